#!/usr/bin/env python3
"""Data stage of the breast_cancer bundle: scikit-learn's bundled Wisconsin diagnostic breast
cancer data (569 fine-needle aspirates, 30 features of the cell nuclei), made imbalanced as a
screening population is: every benign case and a seeded 60 of the 212 malignant ones are kept
(target 1 = malignant, ~14%), split 65/35 stratified, seed 0.

Usage: python data/prepare.py --out DIR [--seed 0] [--long]

--long adds `biopsy_ordered` (breast_cancer@long): in train.csv whether a surgical biopsy was
ordered, which was decided after the diagnosis; in test.csv it is another patient's.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.environ["CTXEVAL_BUNDLE_LIB"])

import numpy as np  # noqa: E402
from ctxeval_tabular.data import Leak, Split, TaskData, prepare_main  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402

MALIGNANT_KEPT = 60
LEAK = Leak(column="biopsy_ordered", position=30, scale=1.0, noise=0.15, decimals=0)


def make(long: bool, seed: int) -> TaskData:
    data = load_breast_cancer()
    y = (data.target == 0).astype(np.int64)  # scikit-learn's 0 is malignant
    rng = np.random.default_rng(seed)
    kept = np.sort(np.concatenate([np.flatnonzero(y == 0), rng.choice(np.flatnonzero(y == 1), MALIGNANT_KEPT,
                                                                          replace=False)]))
    columns = [name.replace(" ", "_") for name in data.feature_names]
    context = {"task": "classify breast masses as malignant (target 1) or benign (target 0) from 30 features of "
                       "the cell nuclei in a fine-needle aspirate image",
               "metric": "balanced accuracy on the hidden test labels (the mean of the recall of each class: "
                         "calling every case benign scores 0.5); compare configurations with cv_balanced_accuracy",
               "columns": "mean_*, *_error and worst_* of ten nucleus measurements (radius, texture, perimeter, area, "
                          "smoothness, compactness, concavity, concave points, symmetry, fractal dimension)"}
    split = Split(test_fraction=0.35, seed=seed, notes=[
        "imbalanced: about 1 case in 7 is malignant", "features are on very different scales", "no missing values"])
    return TaskData(data.data[kept], y[kept], columns, split, context, LEAK if long else None)


if __name__ == "__main__":
    sys.exit(prepare_main(make))
