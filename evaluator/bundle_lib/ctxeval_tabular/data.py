"""The data stage of a tabular task: a seeded train/test split written as the bundle's files.

public/train.csv (id, features..., target), public/test.csv (id, features...; rows in id order),
private/test_labels.csv (id, target) and public/context.json (public facts only). Ids are a
random permutation, so they say nothing about the split or the row's origin. A `Leak` adds a
column that carries the target in train.csv and nothing in test.csv (the long-horizon variants'
decisive fact: the data owner says it must not be used).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Leak:
    """A column made from the target in train and from another row's target in test (so both
    have the same distribution, and test's says nothing)."""

    column: str
    position: int  # where it is inserted among the feature columns
    scale: float = 1.0
    noise: float = 0.2  # std of the noise added to scale * target
    decimals: int | None = None  # round it (e.g. 0: an integer-looking code)


@dataclass(frozen=True)
class Split:
    test_fraction: float
    seed: int = 0
    stratify: bool = True  # classification: each class in the same share in train and test
    notes: list[str] = field(default_factory=list)


def _test_rows(y: np.ndarray, split: Split, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask of the test rows."""
    in_test = np.zeros(len(y), dtype=bool)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if split.stratify else [np.arange(len(y))]
    for rows in groups:
        chosen = rng.choice(rows, size=int(round(split.test_fraction * len(rows))), replace=False)
        in_test[chosen] = True
    return in_test


def _leak_values(y: np.ndarray, in_test: np.ndarray, leak: Leak, rng: np.random.Generator) -> np.ndarray:
    source = y.astype(float).copy()
    source[in_test] = rng.choice(y[~in_test], size=int(in_test.sum()))  # other rows' targets: no information
    values = leak.scale * source + rng.normal(scale=leak.noise, size=len(y))
    return np.round(values, leak.decimals) if leak.decimals is not None else values


def write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Equal-length columns: integers as integers, floats with 6 decimals."""
    names = list(columns)
    fmts = ["%d" if np.issubdtype(columns[c].dtype, np.integer) else "%.6f" for c in names]
    table = np.column_stack([columns[c].astype(np.float64) for c in names])
    np.savetxt(path, table, fmt=fmts, delimiter=",", header=",".join(names), comments="")
    os.chmod(path, 0o644)


def summary(x: np.ndarray, columns: list[str]) -> dict[str, dict[str, float]]:
    return {name: {"mean": round(float(x[:, j].mean()), 4), "std": round(float(x[:, j].std()), 4),
                   "min": round(float(x[:, j].min()), 4), "max": round(float(x[:, j].max()), 4)}
            for j, name in enumerate(columns)}


def write_task_data(out: Path, x: np.ndarray, y: np.ndarray, columns: list[str], split: Split,
                    context: dict[str, Any], leak: Leak | None = None) -> None:
    """Split (x, y) and write the bundle's data files under `out`; `context` gains the row counts,
    the target's summary and every column's summary."""
    rng = np.random.default_rng(split.seed)
    in_test = _test_rows(y, split, rng)
    if leak is not None:
        x = np.insert(x, leak.position, _leak_values(y, in_test, leak, rng), axis=1)
        columns = [*columns[: leak.position], leak.column, *columns[leak.position:]]
    ids = rng.permutation(len(y)).astype(np.int64)
    public, private = out / "public", out / "private"
    for folder in (out, public, private):
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o755)
    train, test = ~in_test, in_test
    write_csv(public / "train.csv", {"id": ids[train], **{c: x[train, j] for j, c in enumerate(columns)},
                                     "target": y[train]})
    order = np.argsort(ids[test])
    write_csv(public / "test.csv", {"id": ids[test][order], **{c: x[test][order, j] for j, c in enumerate(columns)}})
    write_csv(private / "test_labels.csv", {"id": ids[test][order], "target": y[test][order]})
    full = {**context, "rows": {"train": int(train.sum()), "test": int(test.sum())},
            "target": _target_summary(y[train]), "features": summary(x[train], columns), "notes": split.notes}
    (public / "context.json").write_text(json.dumps(full, indent=2) + "\n")
    os.chmod(public / "context.json", 0o644)


def _target_summary(y: np.ndarray) -> dict[str, Any]:
    if np.issubdtype(y.dtype, np.integer):
        values, counts = np.unique(y, return_counts=True)
        return {"class_shares": {str(int(v)): round(float(c) / len(y), 4) for v, c in zip(values, counts)}}
    return {"mean": round(float(y.mean()), 4), "std": round(float(y.std()), 4),
            "min": round(float(y.min()), 4), "max": round(float(y.max()), 4)}


@dataclass(frozen=True)
class TaskData:
    """What a bundle's data/prepare.py hands to `prepare_main`."""

    x: np.ndarray
    y: np.ndarray
    columns: list[str]
    split: Split
    context: dict[str, Any]
    leak: Leak | None = None


def prepare_main(make: Callable[[bool, int], TaskData], argv: list[str] | None = None) -> int:
    """A tabular bundle's data stage: `prepare.py --out DIR [--seed 0] [--long]`; `make(long, seed)`
    gives the data. One line on stderr and exit 1 when it fails."""
    parser = argparse.ArgumentParser(description="write a tabular task's data files")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the split (default 0)")
    parser.add_argument("--long", action="store_true", help="the long-horizon variant's data (with its leak)")
    args = parser.parse_args(argv)
    try:
        task = make(args.long, args.seed)
        write_task_data(args.out, task.x, task.y, task.columns, task.split, task.context, task.leak)
    except Exception as exc:  # noqa: BLE001 - any failure reported as one clear line
        print(f"prepare.py: error: could not write the data to {args.out}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 1
    return 0
