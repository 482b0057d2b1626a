#!/usr/bin/env python3
"""Grader of the toy bundle: test accuracy of $CTXEVAL_WORKSPACE/predictions.csv.

Compares the submission with $CTXEVAL_PRIVATE/test_labels.csv (aligned by id, not by row
order) and writes $CTXEVAL_OUTPUT/grade.json. An unusable submission is graded
`valid: false` with a reason, and the grader still exits 0; it exits non-zero only when it
cannot grade at all (missing environment or private labels: a bundle or evaluator bug).
It only scores; whether the score is a success is decided by the evaluator.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any

PREDICTIONS_FILE = "predictions.csv"
MAX_BYTES = 5_000_000  # far above a real submission (~5 kB); guards against a runaway file


class InvalidSubmission(Exception):
    """The submission cannot be scored; the message is the reason shown to the user."""


def env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return Path(value)


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
        return {int(row["id"]): int(row["target"]) for row in csv.DictReader(handle)}


def read_submission_text(path: Path, max_bytes: int) -> str:
    """The submission's text, read through one descriptor opened without following a link or
    blocking on a FIFO, and checked on that descriptor (no window between a check and the open)."""
    name = path.name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InvalidSubmission(f"{name} not found in the workspace") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the workspace is the agent's: a link could point at the answers
            raise InvalidSubmission(f"{name} is a symbolic link; it must be a regular file") from None
        raise InvalidSubmission(f"{name} cannot be opened ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InvalidSubmission(f"{name} is not a regular file")
        if info.st_size > max_bytes:
            raise InvalidSubmission(f"{name} is larger than {max_bytes} bytes")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InvalidSubmission(f"{name} is larger than {max_bytes} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidSubmission(f"{name} is not UTF-8 text") from None


def read_predictions(workspace: Path) -> dict[int, int]:
    """Read the submission as {id: label}; raise InvalidSubmission with a clear reason."""
    path = workspace / PREDICTIONS_FILE
    if path.is_symlink():  # said early for a clear message; the open below is what enforces it
        raise InvalidSubmission(f"{PREDICTIONS_FILE} is a symbolic link; it must be a regular file")
    text = read_submission_text(path, MAX_BYTES)
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
        return result(False, None, reason, details)
    correct = sum(predictions[i] == label for i, label in labels.items())
    return result(True, round(correct / len(labels), 6), None, {**details, "n_correct": correct})


def result(valid: bool, score: float | None, reason: str | None, details: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": 1, "valid": valid, "score": score, "metric": "accuracy",
            "reason": reason, "details": details}


def main() -> int:
    workspace, private, output = (env_path(n) for n in ("CTXEVAL_WORKSPACE", "CTXEVAL_PRIVATE", "CTXEVAL_OUTPUT"))
    labels = read_labels(private / "test_labels.csv")
    if not labels:
        raise RuntimeError("the private test labels are empty")
    try:
        outcome = grade(read_predictions(workspace), labels)
    except InvalidSubmission as exc:
        outcome = result(False, None, str(exc), {"n_test": len(labels), "n_predicted": None})
    tmp = output / ".grade.json.tmp"
    tmp.write_text(json.dumps(outcome, indent=2) + "\n")
    os.replace(tmp, output / "grade.json")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # noqa: BLE001 - a grader failure, not a bad submission
        print(f"grade.py: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
