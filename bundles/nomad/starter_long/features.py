"""Feature code of the workspace: `make_features(df)` turns raw rows into model inputs.

The tools (train_and_evaluate, predict) and train.py import this file from the workspace on
every call, so editing it changes the features they use.

`df` holds the 12 feature columns of train.csv or test.csv (not `id`, not the targets), one row
per material:
  spacegroup, number_of_total_atoms, percent_atom_al, percent_atom_ga, percent_atom_in,
  lattice_vector_1_ang, lattice_vector_2_ang, lattice_vector_3_ang,
  lattice_angle_alpha_degree, lattice_angle_beta_degree, lattice_angle_gamma_degree,
  lab_bandgap_estimate
It is called separately for train and test, so compute every feature row by row (no
statistics of the whole frame). Return a DataFrame with one row per input row (same order)
and numeric or boolean columns (NaN allowed, inf not); train and test must get the same
columns. The tools' `config.drop_features` leaves named columns of what this returns out.

Baseline: every column as it is, no feature engineering.
"""

from __future__ import annotations

import pandas as pd


def make_features(df: pd.DataFrame) -> pd.DataFrame:
    return df.copy()
