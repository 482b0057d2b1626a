#!/usr/bin/env python3
"""Data stage of the digits bundle: scikit-learn's bundled handwritten digits (UCI optdigits test
set: 1797 images of 8x8 pixels, grey levels 0-16, ten classes), split 2:1 stratified, seed 0.

Usage: python data/prepare.py --out DIR [--seed 0] [--long]

Columns px_R_C hold the pixel in row R, column C (0-7, top-left first). --long adds the column
`form_id` of the digits@long variant: in train.csv the form number, which encodes the digit
(the forms were filled in one digit at a time); in test.csv it is another row's, and says nothing.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.environ["CTXEVAL_BUNDLE_LIB"])

import numpy as np  # noqa: E402
from ctxeval_tabular.data import Leak, Split, TaskData, prepare_main  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

COLUMNS = [f"px_{r}_{c}" for r in range(8) for c in range(8)]
LEAK = Leak(column="form_id", position=0, scale=1.0, noise=0.45, decimals=0)


def make(long: bool, seed: int) -> TaskData:
    x, y = load_digits(return_X_y=True)
    context = {"task": "classify 8x8 images of handwritten digits (0-9) from their 64 pixels",
               "metric": "accuracy on the hidden test labels; compare configurations with cv_accuracy",
               "image": {"height": 8, "width": 8, "grey_levels": "0 (white) to 16 (black)",
                         "columns": "px_R_C = the pixel in row R, column C, row by row from the top left"}}
    split = Split(test_fraction=1 / 3, seed=seed, notes=[
        "each image is a 32x32 bitmap downsampled to 8x8 blocks: a pixel counts the inked points of its 4x4 block",
        "the border columns (px_R_0, px_R_7) are almost always 0", "no missing values"])
    return TaskData(x.astype(np.int64), y.astype(np.int64), COLUMNS, split, context, LEAK if long else None)


if __name__ == "__main__":
    sys.exit(prepare_main(make))
