"""Feature code of the reference solution: the raw columns plus physically motivated features.

`make_features(df)` gets the 11 raw feature columns of train.csv or test.csv (no id, no
targets) and computes everything row by row:

- unit-cell geometry: the cell volume from the three lattice vector lengths and angles,
  V = a b c sqrt(1 + 2 cos(alpha) cos(beta) cos(gamma) - cos^2(alpha) - cos^2(beta) - cos^2(gamma)),
  the volume per atom, the atomic density (atoms per cubic angstrom), the mass density, the
  lattice lengths relative to the cube root of the volume (cell shape) and the angles' cosines;
- composition: properties of Al, Ga and In weighted by their fractions of the metal sites
  (Vegard's-law-like averages): atomic mass, electronegativity, Shannon ionic radius (3+, 6-fold),
  first ionisation energy and the band gap of the pure sesquioxide;
- the spacegroup one-hot encoded (it is a category, not a quantity).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RAW_COLUMNS = [
    "spacegroup", "number_of_total_atoms", "percent_atom_al", "percent_atom_ga", "percent_atom_in",
    "lattice_vector_1_ang", "lattice_vector_2_ang", "lattice_vector_3_ang",
    "lattice_angle_alpha_degree", "lattice_angle_beta_degree", "lattice_angle_gamma_degree",
]
SPACEGROUPS = (12, 33, 167, 194, 206, 227)
FRACTIONS = ["percent_atom_al", "percent_atom_ga", "percent_atom_in"]
# (Al, Ga, In)
ELEMENT_PROPERTIES = {
    "mass": (26.982, 69.723, 114.818),             # atomic mass, u
    "electronegativity": (1.61, 1.81, 1.78),       # Pauling
    "ionic_radius": (0.535, 0.620, 0.800),         # Shannon, M3+ six-fold, angstrom
    "ionization_energy": (5.986, 5.999, 5.786),    # first ionisation energy, eV
    "oxide_bandgap": (8.8, 4.8, 2.9),              # band gap of Al2O3, Ga2O3, In2O3, eV (approximate)
}
OXYGEN_MASS = 15.999


def make_features(df: pd.DataFrame) -> pd.DataFrame:
    out = df[RAW_COLUMNS].copy()
    a, b, c = (df[f"lattice_vector_{i}_ang"] for i in (1, 2, 3))
    cosines = {n: np.cos(np.radians(df[f"lattice_angle_{n}_degree"])) for n in ("alpha", "beta", "gamma")}
    ca, cb, cg = cosines["alpha"], cosines["beta"], cosines["gamma"]
    volume = a * b * c * np.sqrt(np.clip(1 + 2 * ca * cb * cg - ca**2 - cb**2 - cg**2, 0.0, None))
    atoms = df["number_of_total_atoms"]
    out["volume"] = volume
    out["volume_per_atom"] = volume / atoms
    out["atomic_density"] = atoms / volume
    for i, length in enumerate((a, b, c), start=1):
        out[f"lattice_{i}_relative"] = length / np.cbrt(volume)
    for name, values in cosines.items():
        out[f"cos_{name}"] = values
    fractions = df[FRACTIONS].to_numpy(dtype=float)
    for name, values in ELEMENT_PROPERTIES.items():
        out[f"mean_{name}"] = fractions @ np.asarray(values)
    metal_atoms, oxygen_atoms = 0.4 * atoms, 0.6 * atoms  # (AlxGayInz)2O3: 2 metals per 3 oxygens
    out["mass_density"] = (metal_atoms * out["mean_mass"] + oxygen_atoms * OXYGEN_MASS) / volume
    for group in SPACEGROUPS:
        out[f"spacegroup_{group}"] = (df["spacegroup"] == group).astype(float)
    return out
