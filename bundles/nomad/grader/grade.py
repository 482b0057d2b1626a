#!/usr/bin/env python3
"""Grader of the nomad bundle: mean RMSLE of $CTXEVAL_WORKSPACE/submission.csv, as MLE-bench.

Compares the submission with $CTXEVAL_PRIVATE/test.csv (rows matched by id, not by order) and
writes $CTXEVAL_OUTPUT/grade.json. Score: the mean over the two targets
(formation_energy_ev_natom, bandgap_energy_ev) of RMSLE = sqrt(mean((log1p(pred) - log1p(true))^2)),
lower is better, rounded to 5 decimals (MLE-bench's nomad2018-predict-transparent-conductors
metric). details: RMSLE per target, the bandgap MAE, the row count and the Kaggle medal level
(MLE-bench's leaderboard thresholds).

An unusable submission is graded `valid: false` with a reason, and the grader still exits 0;
it exits non-zero only when it cannot grade at all (missing environment or private answers:
a bundle or evaluator bug). It only scores; whether the score is a success is decided by the
evaluator. Importable: grade(submission_path, answers_path) -> the grade dict. Reading the
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

SUBMISSION_FILE = "submission.csv"
ANSWERS_FILE = "test.csv"
METRIC = "mean_rmsle"
ID = "id"
TARGETS = ("formation_energy_ev_natom", "bandgap_energy_ev")
MAX_BYTES = 5_000_000  # far above a real submission (~15 kB); guards against a runaway file

# Medal thresholds of MLE-bench for this competition (Kaggle private leaderboard, 879 teams:
# gold = 11th place, silver = 50th, bronze = 100th, median). Lower is better; a medal needs
# score <= threshold, "above_median" needs score < median.
GOLD_THRESHOLD = 0.05589
SILVER_THRESHOLD = 0.06229
BRONZE_THRESHOLD = 0.06582
MEDIAN_THRESHOLD = 0.06988


def medal(score: float) -> str:
    if score <= GOLD_THRESHOLD:
        return "gold"
    if score <= SILVER_THRESHOLD:
        return "silver"
    if score <= BRONZE_THRESHOLD:
        return "bronze"
    if score < MEDIAN_THRESHOLD:
        return "above_median"
    return "none"


def read_answers(path: Path) -> dict[int, tuple[float, float]]:
    """Read the private answers; any problem here is a bundle bug and raises."""
    with path.open(newline="") as handle:
        answers = {int(row[ID]): tuple(float(row[t]) for t in TARGETS) for row in csv.DictReader(handle)}
    if not answers:
        raise GraderError(f"the private answers {path} are empty")
    return answers  # type: ignore[return-value]


def parse_id(text: str, where: str) -> int:
    try:
        number = float(text)
    except ValueError:
        raise InvalidSubmission(f"{where}: id {text!r} is not an integer") from None
    if not math.isfinite(number) or number != int(number):
        raise InvalidSubmission(f"{where}: id {text!r} is not an integer")
    return int(number)


def parse_value(text: str, column: str, where: str) -> float:
    """A finite, non-negative number; anything else is invalid with a precise reason."""
    if not text:
        raise InvalidSubmission(f"{where}: {column} is empty")
    try:
        number = float(text)
    except ValueError:
        raise InvalidSubmission(f"{where}: {column} is not a number: {text!r}") from None
    if math.isnan(number):
        raise InvalidSubmission(f"{where}: {column} is NaN")
    if math.isinf(number):
        raise InvalidSubmission(f"{where}: {column} is infinite ({text!r})")
    if number < 0:
        raise InvalidSubmission(f"{where}: {column} is negative ({text}); RMSLE needs predictions >= 0")
    return number


def read_submission(path: Path) -> dict[int, tuple[float, float]]:
    """Read the submission as {id: (formation, bandgap)}; raise InvalidSubmission with a clear reason."""
    name = path.name
    text = grading.read_submission(path, MAX_BYTES)
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in (ID, *TARGETS) if c not in header]
    if missing:
        raise InvalidSubmission(
            f"{name} lacks column(s) {', '.join(missing)} (header: {','.join(header) or 'empty'}; "
            f"expected {ID},{','.join(TARGETS)})"
        )
    if len(set(header)) != len(header):
        raise InvalidSubmission(f"{name} has duplicate column names (header: {','.join(header)})")
    columns = [header.index(c) for c in (ID, *TARGETS)]
    rows: dict[int, tuple[float, float]] = {}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        where = f"{name} line {line}"
        if len(row) != len(header):
            raise InvalidSubmission(f"{where}: expected {len(header)} fields, got {len(row)}")
        row_id = parse_id(row[columns[0]].strip(), where)
        if row_id in rows:
            raise InvalidSubmission(f"{where}: duplicate id {row_id}")
        rows[row_id] = tuple(parse_value(row[j].strip(), t, where)  # type: ignore[assignment]
                             for j, t in zip(columns[1:], TARGETS))
    return rows


def rmsle(true: list[float], predicted: list[float]) -> float:
    return math.sqrt(sum((math.log1p(p) - math.log1p(t)) ** 2 for t, p in zip(true, predicted)) / len(true))


def score_rows(submission: dict[int, tuple[float, float]], answers: dict[int, tuple[float, float]],
               name: str = SUBMISSION_FILE) -> dict[str, Any]:
    """Check the ids match the test set exactly, then return the grade (mean RMSLE, aligned by id)."""
    details: dict[str, Any] = {"n_test": len(answers), "n_rows": len(submission)}
    if len(submission) != len(answers):
        return result(False, None, f"{name} has {len(submission)} rows; expected {len(answers)} "
                                   f"(one per test id)", details)
    unknown = sorted(set(submission) - set(answers))
    if unknown:
        absent = sorted(set(answers) - set(submission))
        return result(False, None, f"{name} has {len(unknown)} id(s) not in the test set (e.g. {unknown[:5]}) "
                                   f"and lacks {len(absent)} test id(s) (e.g. {absent[:5]})", details)
    ids = sorted(answers)
    per_target = {}
    for j, target in enumerate(TARGETS):
        per_target[target] = rmsle([answers[i][j] for i in ids], [submission[i][j] for i in ids])
    score = round(sum(per_target.values()) / len(TARGETS), 5)
    j = TARGETS.index("bandgap_energy_ev")
    mae = sum(abs(submission[i][j] - answers[i][j]) for i in ids) / len(ids)
    details.update(
        rmsle={t: round(v, 6) for t, v in per_target.items()},
        bandgap_mae=round(mae, 6),
        medal=medal(score),
        medal_thresholds={"gold": GOLD_THRESHOLD, "silver": SILVER_THRESHOLD, "bronze": BRONZE_THRESHOLD,
                          "median": MEDIAN_THRESHOLD},
    )
    return result(True, score, None, details)


def result(valid: bool, score: float | None, reason: str | None, details: dict[str, Any]) -> dict[str, Any]:
    return grading.make_grade(METRIC, valid, score, reason, details)


def grade(submission_path: Path | str, answers_path: Path | str) -> dict[str, Any]:
    """Grade one submission file against the answers file (private test.csv); the grade dict."""
    answers = read_answers(Path(answers_path))
    try:
        return score_rows(read_submission(Path(submission_path)), answers, Path(submission_path).name)
    except InvalidSubmission as exc:
        return result(False, None, str(exc), {"n_test": len(answers), "n_rows": None})


def grade_workspace() -> dict[str, Any]:
    """The grade of $CTXEVAL_WORKSPACE/submission.csv against $CTXEVAL_PRIVATE/test.csv."""
    workspace, private = env_path("CTXEVAL_WORKSPACE"), env_path("CTXEVAL_PRIVATE")
    env_path("CTXEVAL_OUTPUT")  # before any work: without it nothing can be graded
    return grade(workspace / SUBMISSION_FILE, private / ANSWERS_FILE)


if __name__ == "__main__":
    grading.main(grade_workspace, METRIC)
