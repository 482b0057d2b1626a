#!/usr/bin/env python3
"""Data stage of the toy bundle: write a small seeded synthetic binary classification task.

Usage: python data/prepare.py --out DIR [--seed 0] [--long]

Writes DIR/public/train.csv (id, f0..f13, target), DIR/public/test.csv (id, f0..f13)
and DIR/private/test_labels.csv (id, target). Prints nothing unless it fails.

The label mixes one linear signal with non-monotone (U-shaped) and interaction
effects, plus pure-noise columns, so a linear model plateaus around 0.73-0.75
accuracy while tree ensembles reach about 0.88-0.92.

--long writes the data of the `toy@long` variant instead (prepare_long.py): 32 features
f0..f31, of which f23 leaks the label in train.csv and is noise in test.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

N_TRAIN = 1500
N_TEST = 500
N_SIGNAL = 6
N_NOISE = 8


def make_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (ids, X, y) for N_TRAIN + N_TEST rows; deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_TEST
    z = rng.normal(size=(n, N_SIGNAL))
    linear = z[:, 4] + 0.5 * z[:, 5]
    u_shapes = (np.abs(z[:, 0]) - 0.8) + (np.abs(z[:, 1]) - 0.8)  # invisible to a linear model
    both_high = np.where((z[:, 2] > 0.3) & (z[:, 3] > 0.3), 1.0, -0.2)  # interaction
    score = 1.5 * linear + 2.0 * u_shapes + 0.8 * both_high + rng.normal(scale=0.2, size=n)
    y = (score > 0).astype(np.int64)
    x = np.hstack([z, rng.normal(size=(n, N_NOISE))])
    x = x[:, rng.permutation(x.shape[1])]  # hide which columns carry signal
    ids = rng.permutation(n).astype(np.int64)  # ids carry no information about the split
    return ids, x, y


def write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Write equal-length columns (ints as integers, floats with 6 decimals)."""
    names = list(columns)
    fmts = ["%d" if np.issubdtype(columns[c].dtype, np.integer) else "%.6f" for c in names]
    table = np.column_stack([columns[c].astype(np.float64) for c in names])
    np.savetxt(path, table, fmt=fmts, delimiter=",", header=",".join(names), comments="")
    os.chmod(path, 0o644)


def prepare(out: Path, seed: int) -> None:
    ids, x, y = make_data(seed)
    features = {f"f{j}": x[:, j] for j in range(x.shape[1])}
    train, test = slice(0, N_TRAIN), slice(N_TRAIN, None)
    public, private = out / "public", out / "private"
    for d in (out, public, private):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o755)
    write_csv(public / "train.csv",
              {"id": ids[train], **{k: v[train] for k, v in features.items()}, "target": y[train]})
    order = np.argsort(ids[test])  # test rows in id order
    write_csv(public / "test.csv",
              {"id": ids[test][order], **{k: v[test][order] for k, v in features.items()}})
    write_csv(private / "test_labels.csv", {"id": ids[test][order], "target": y[test][order]})
    write_context(public / "context.json", x[train], y[train])


def write_context(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """The dataset context the agent may read (and `clarify` answers from): public facts only."""
    context = {
        "task": "binary classification of `target` (0/1) from 14 numeric features f0..f13",
        "metric": "accuracy on the hidden test labels; compare configurations with cv_accuracy",
        "rows": {"train": int(len(y)), "test": N_TEST},
        "class_balance": {"target=1": round(float(y.mean()), 4), "target=0": round(float(1 - y.mean()), 4)},
        "features": {f"f{j}": {"mean": round(float(x[:, j].mean()), 4), "std": round(float(x[:, j].std()), 4),
                               "min": round(float(x[:, j].min()), 4), "max": round(float(x[:, j].max()), 4)}
                     for j in range(x.shape[1])},
        "notes": ["some features are pure noise", "the signal is partly non-linear (U-shapes, interactions)",
                  "no missing values", "features are not standardised"],
    }
    path.write_text(json.dumps(context, indent=2) + "\n")
    os.chmod(path, 0o644)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--long", action="store_true", help="the toy@long variant's data (32 features, a leak)")
    args = parser.parse_args(argv)
    try:
        if args.long:
            from prepare_long import prepare_long
            prepare_long(args.out, args.seed)
        else:
            prepare(args.out, args.seed)
    except Exception as exc:  # noqa: BLE001 - report any failure as one clear line
        print(f"prepare.py: error: could not write the toy data to {args.out}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
