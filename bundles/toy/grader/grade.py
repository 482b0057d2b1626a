#!/usr/bin/env python3
"""Grader of the toy bundle: test accuracy of $CTXEVAL_WORKSPACE/predictions.csv.

Compares the submission with $CTXEVAL_PRIVATE/test_labels.csv (aligned by id, not by row
order) and writes $CTXEVAL_OUTPUT/grade.json. An unusable submission is graded
`valid: false` with a reason, and the grader still exits 0; it exits non-zero only when it
cannot grade at all (missing environment or private labels: a bundle or evaluator bug).
It only scores; whether the score is a success is decided by the evaluator. Reading the
environment and the submission safely, grade.json and the exit codes are ctxeval's grading
helper's ($CTXEVAL_GRADING_LIB/ctxeval_grading.py).
"""

from __future__ import annotations

import csv
import math
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, os.environ["CTXEVAL_GRADING_LIB"])
import ctxeval_grading as grading  # noqa: E402
from ctxeval_grading import GraderError, InvalidSubmission, env_path  # noqa: E402

PREDICTIONS_FILE = "predictions.csv"
LABELS_FILE = "test_labels.csv"
METRIC = "accuracy"
MAX_BYTES = 5_000_000  # far above a real submission (~5 kB); guards against a runaway file


def parse_id(text: str, where: str) -> int:
    try:
        number = float(text)
    except ValueError:
        raise InvalidSubmission(f"{where}: id {text!r} is not an integer") from None
    if not math.isfinite(number) or number != int(number):
        raise InvalidSubmission(f"{where}: id {text!r} is not an integer")
    return int(number)


def parse_label(text: str, where: str) -> int:
    """Accept 0/1 (also written 0.0/1.0); reject anything else, including empty and NaN."""
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if number not in (0.0, 1.0):
        raise InvalidSubmission(f"{where}: target must be 0 or 1, got {text!r}")
    return int(number)


def read_labels(path: Path) -> dict[int, int]:
    """Read the private labels; any problem here is a bundle bug and raises."""
    with path.open(newline="") as handle:
        labels = {int(row["id"]): int(row["target"]) for row in csv.DictReader(handle)}
    if not labels:
        raise GraderError("the private test labels are empty")
    return labels


def read_predictions(workspace: Path) -> dict[int, int]:
    """Read the submission as {id: label}; raise InvalidSubmission with a clear reason."""
    text = grading.read_submission(workspace / PREDICTIONS_FILE, MAX_BYTES)
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in ("id", "target") if c not in header]
    if missing:
        raise InvalidSubmission(
            f"{PREDICTIONS_FILE} has no {' or '.join(missing)} column (header: {','.join(header) or 'empty'})"
        )
    id_col, target_col = header.index("id"), header.index("target")
    predictions: dict[int, int] = {}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        where = f"{PREDICTIONS_FILE} line {line}"
        if len(row) != len(header):
            raise InvalidSubmission(f"{where}: expected {len(header)} fields, got {len(row)}")
        row_id = parse_id(row[id_col].strip(), where)
        if row_id in predictions:
            raise InvalidSubmission(f"{where}: duplicate id {row_id}")
        predictions[row_id] = parse_label(row[target_col].strip(), where)
    return predictions


def grade(predictions: dict[int, int], labels: dict[int, int]) -> dict[str, Any]:
    """Check the ids match the test set exactly, then return the grade (accuracy)."""
    details = {"n_test": len(labels), "n_predicted": len(predictions)}
    unknown = sorted(set(predictions) - set(labels))
    absent = sorted(set(labels) - set(predictions))
    if unknown or absent:
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} id(s) not in the test set (e.g. {unknown[:5]})")
        if absent:
            parts.append(f"{len(absent)} test id(s) without a prediction (e.g. {absent[:5]})")
        reason = f"{PREDICTIONS_FILE} must have exactly one row per test id ({len(labels)} rows): " + "; ".join(parts)
        return grading.invalid_grade(METRIC, reason, details)
    correct = sum(predictions[i] == label for i, label in labels.items())
    return grading.make_grade(METRIC, True, round(correct / len(labels), 6), None, {**details, "n_correct": correct})


def grade_workspace() -> dict[str, Any]:
    """The grade of $CTXEVAL_WORKSPACE against $CTXEVAL_PRIVATE's labels."""
    workspace, private = env_path("CTXEVAL_WORKSPACE"), env_path("CTXEVAL_PRIVATE")
    env_path("CTXEVAL_OUTPUT")  # before any work: without it nothing can be graded
    labels = read_labels(private / LABELS_FILE)
    try:
        return grade(read_predictions(workspace), labels)
    except InvalidSubmission as exc:
        raise InvalidSubmission(str(exc), {"n_test": len(labels), "n_predicted": None}) from None


if __name__ == "__main__":
    grading.main(grade_workspace, METRIC)
