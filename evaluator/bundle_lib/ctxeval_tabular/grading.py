"""The grader of a tabular task: `predictions.csv` (id, target) in the workspace against the
private `test_labels.csv`, rows matched by id, scored by the task's metric.

An unusable submission is graded `valid: false` with the reason; the program exits non-zero only
when it cannot grade (environment or private labels: a bundle or evaluator bug). Reading the
submission safely and writing grade.json are ctxeval's grading helper's (ctxeval_grading, which
the grading sandbox names in $CTXEVAL_GRADING_LIB: put it on sys.path before importing this).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import ctxeval_grading as grading
import numpy as np
from ctxeval_grading import GraderError, InvalidSubmission, env_path

from .metrics import METRICS, Metric

PREDICTIONS_FILE = "predictions.csv"
LABELS_FILE = "test_labels.csv"
MAX_BYTES = 20_000_000  # far above a real submission (tens of kB); guards against a runaway file


def _number(text: str, where: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidSubmission(f"{where}: {what} must be a finite number, got {text!r}")
    return value


def read_labels(path: Path) -> dict[int, float]:
    """The private labels; any problem here is a bundle bug and raises."""
    with path.open(newline="") as handle:
        labels = {int(row["id"]): float(row["target"]) for row in csv.DictReader(handle)}
    if not labels:
        raise GraderError("the private test labels are empty")
    return labels


def read_predictions(workspace: Path, metric: Metric, classes: set[float]) -> dict[int, float]:
    """The submission as {id: prediction}; InvalidSubmission with a clear reason otherwise.
    Classification predictions must be one of the test labels' classes."""
    text = grading.read_submission(workspace / PREDICTIONS_FILE, MAX_BYTES)
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in ("id", "target") if c not in header]
    if missing:
        raise InvalidSubmission(f"{PREDICTIONS_FILE} has no {' or '.join(missing)} column "
                                f"(header: {','.join(header) or 'empty'})")
    id_col, target_col = header.index("id"), header.index("target")
    found: dict[int, float] = {}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{PREDICTIONS_FILE} line {line}"
        if len(row) != len(header):
            raise InvalidSubmission(f"{where}: expected {len(header)} fields, got {len(row)}")
        number = _number(row[id_col].strip(), where, "id")
        if number != int(number):
            raise InvalidSubmission(f"{where}: id {row[id_col].strip()!r} is not an integer")
        if int(number) in found:
            raise InvalidSubmission(f"{where}: duplicate id {int(number)}")
        value = _number(row[target_col].strip(), where, "target")
        if metric.kind == "classification" and value not in classes:
            shown = ", ".join(f"{c:g}" for c in sorted(classes))
            raise InvalidSubmission(f"{where}: target must be one of the classes {shown}, got {row[target_col].strip()!r}")
        found[int(number)] = value
    return found


def grade(predictions: dict[int, float], labels: dict[int, float], metric: Metric) -> dict[str, Any]:
    """The ids must match the test set exactly; then the grade is the metric over every test row."""
    details = {"n_test": len(labels), "n_predicted": len(predictions)}
    unknown, absent = sorted(set(predictions) - set(labels)), sorted(set(labels) - set(predictions))
    if unknown or absent:
        parts = ([f"{len(unknown)} id(s) not in the test set (e.g. {unknown[:5]})"] if unknown else []) + \
                ([f"{len(absent)} test id(s) without a prediction (e.g. {absent[:5]})"] if absent else [])
        return grading.invalid_grade(metric.name, f"{PREDICTIONS_FILE} must have exactly one row per test id "
                                     f"({len(labels)} rows): " + "; ".join(parts), details)
    ids = sorted(labels)
    truth, predicted = np.array([labels[i] for i in ids]), np.array([predictions[i] for i in ids])
    return grading.make_grade(metric.name, True, round(float(metric.score(truth, predicted)), 6), None, details)


def grade_workspace(metric_name: str) -> dict[str, Any]:
    """The grade of $CTXEVAL_WORKSPACE against $CTXEVAL_PRIVATE's labels."""
    metric = METRICS[metric_name]
    workspace, private = env_path("CTXEVAL_WORKSPACE"), env_path("CTXEVAL_PRIVATE")
    env_path("CTXEVAL_OUTPUT")  # before any work: without it nothing can be graded
    labels = read_labels(private / LABELS_FILE)
    try:
        return grade(read_predictions(workspace, metric, set(labels.values())), labels, metric)
    except InvalidSubmission as exc:
        raise InvalidSubmission(str(exc), {"n_test": len(labels), "n_predicted": None}) from None


def main(metric_name: str) -> None:
    """A tabular grader's entry point: grade.json written, exit 0 (1 when it cannot grade)."""
    grading.main(lambda: grade_workspace(metric_name), metric_name)
