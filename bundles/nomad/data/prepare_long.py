"""Data of the `nomad@long` variant (run through `prepare.py --long`).

MLE-bench's split as for the base bundle (checked against its MD5s first), then one column more
in the public files: `lab_bandgap_estimate`. In train.csv it is the band gap target plus a little
noise (a model using it looks excellent in cross-validation); in test.csv it is noise with the
same marginal distribution (train's values, drawn at random for the test rows), so the same
model scores far worse on the hidden test labels. The private answers are the base bundle's.
See the bundle's README ("Variant nomad@long") for the measured figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LEAK_COLUMN = "lab_bandgap_estimate"
LEAK_SEED = 2018
LEAK_RELATIVE_NOISE = 0.03  # std of the multiplicative noise on the band gap in train's column
LEAK_ABSOLUTE_NOISE = 0.02  # std of the additive noise (eV)
LEAK_DECIMALS = 3
BANDGAP = "bandgap_energy_ev"
LEAK_MEANING = ("band gap estimated from a fast optical absorption measurement in the lab, in eV "
                "(one reading per material)")


def leak_values(bandgap: np.ndarray, n_test: int, seed: int = LEAK_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train column, test column): train's is the band gap with noise, test's is drawn from
    train's values (same marginal distribution, no relation to the test rows' band gaps)."""
    rng = np.random.default_rng(seed)
    noisy = bandgap * (1 + rng.normal(scale=LEAK_RELATIVE_NOISE, size=len(bandgap)))
    train = np.round(np.clip(noisy + rng.normal(scale=LEAK_ABSOLUTE_NOISE, size=len(bandgap)), 0.0, None),
                     LEAK_DECIMALS)
    test = rng.choice(train, size=n_test, replace=False)
    return train, test


def with_column(frame: pd.DataFrame, values: np.ndarray, after: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(frame.columns.get_loc(after) + 1, LEAK_COLUMN, values)
    return frame


def add_leak(out: Path, last_feature: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rewrite OUT/public/train.csv and test.csv with the leak column after `last_feature`;
    return the new (train, test) frames (for context.json)."""
    public = out / "public"
    train, test = pd.read_csv(public / "train.csv"), pd.read_csv(public / "test.csv")
    train_values, test_values = leak_values(train[BANDGAP].to_numpy(dtype=float), len(test))
    train, test = with_column(train, train_values, last_feature), with_column(test, test_values, last_feature)
    train.to_csv(public / "train.csv", index=False)
    test.to_csv(public / "test.csv", index=False)
    return train, test
