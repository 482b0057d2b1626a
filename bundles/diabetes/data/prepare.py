#!/usr/bin/env python3
"""Data stage of the diabetes bundle: scikit-learn's bundled diabetes data (Efron et al. 2004:
442 patients, 10 baseline measurements, and a quantitative measure of disease progression one
year later), split 70/30, seed 0. The features are in their original units (not scaled).

Usage: python data/prepare.py --out DIR [--seed 0] [--long]

--long adds `hba1c_followup` (diabetes@long): a blood value measured at the one-year visit, i.e.
after the outcome, so it tracks the target in train.csv; in test.csv it is another patient's.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.environ["CTXEVAL_BUNDLE_LIB"])

from ctxeval_tabular.data import Leak, Split, TaskData, prepare_main  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402

COLUMNS = ["age", "sex", "bmi", "bp", "tc", "ldl", "hdl", "tch", "ltg", "glu"]
LEAK = Leak(column="hba1c_followup", position=10, scale=0.03, noise=0.6)


def make(long: bool, seed: int) -> TaskData:
    data = load_diabetes(scaled=False)
    context = {"task": "predict disease progression one year after baseline (target, about 25-346) "
                       "from 10 baseline measurements",
               "metric": "root mean squared error (rmse) on the hidden test targets, lower is better; "
                         "compare configurations with cv_rmse",
               "columns": {"age": "years", "sex": "1 or 2", "bmi": "body mass index", "bp": "mean blood pressure",
                           "tc": "total serum cholesterol", "ldl": "low-density lipoproteins",
                           "hdl": "high-density lipoproteins", "tch": "total cholesterol / HDL",
                           "ltg": "log of serum triglycerides", "glu": "blood sugar level"}}
    split = Split(test_fraction=0.3, seed=seed, stratify=False, notes=[
        "only 442 patients: cross-validation scores are noisy (compare with cv_std in mind)", "no missing values"])
    return TaskData(data.data, data.target.astype(float), COLUMNS, split, context, LEAK if long else None)


if __name__ == "__main__":
    sys.exit(prepare_main(make))
