#!/usr/bin/env python3
"""Grader of a bundle imported from MLE-bench (written by `ctxeval import mlebench`).

Reads $CTXEVAL_WORKSPACE/<submission> (competition.json) with pandas as MLE-bench does
(float_precision="round_trip"), loads the private answers from $CTXEVAL_PRIVATE (a .csv with pandas,
a .jsonl as a list of records, as MLE-bench's load_answers), calls the competition's own grade
function (copied from the user's MLE-bench checkout into mlebench_src/) and writes
$CTXEVAL_OUTPUT/grade.json: the score rounded to 5 decimals, as MLE-bench's Grader, and in details
the medal MLE-bench would award with the thresholds recorded at import time.

Invalid, as MLE-bench counts them (valid: false, exit 0): a missing or unreadable submission, a file
pandas cannot parse, the competition's InvalidSubmissionError (its message is the reason), any other
exception of the grade function (MLE-bench logs it and scores None), a score that is not a finite
number. A grader failure (exit 1): no environment, no answers, the grade function does not import,
or a library it needs is missing (MissingDependency, ModuleNotFoundError).
"""
from __future__ import annotations

import io
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, os.environ["CTXEVAL_GRADING_LIB"])
sys.path.insert(0, str(HERE))
import ctxeval_grading as grading  # noqa: E402
import ctxeval_mlebench as mle  # noqa: E402
from ctxeval_grading import GraderError, InvalidSubmission, env_path  # noqa: E402

COMPETITION = mle.read_competition(HERE)
METRIC = COMPETITION["metric"]


def load_answers(path: Path) -> Any:
    import pandas as pd
    if not path.is_file():
        raise GraderError(f"the private answers {path} are missing")
    if path.suffix == ".csv":
        return pd.read_csv(path, float_precision="round_trip")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    raise GraderError(f"unsupported answers format: {path.name} (MLE-bench reads .csv and .jsonl)")


def read_submission(path: Path) -> Any:
    """The submission as a DataFrame; InvalidSubmission when it is no readable CSV file."""
    import pandas as pd
    text = grading.read_submission(path, int(COMPETITION["max_submission_bytes"]))
    try:
        return pd.read_csv(io.StringIO(text), float_precision="round_trip")
    except pd.errors.EmptyDataError:
        raise InvalidSubmission(f"{path.name} is empty") from None
    except (pd.errors.ParserError, UnicodeError, ValueError) as exc:
        raise InvalidSubmission(f"{path.name} is not a readable CSV file: {exc}") from None


def grade_function() -> Any:
    try:
        return mle.load_function(HERE / mle.SOURCE_DIR, COMPETITION["grade_fn"], COMPETITION["stub_modules"])
    except Exception as exc:  # noqa: BLE001 - any import failure is the bundle's, reported as such
        raise GraderError(f"cannot import the competition's grade function {COMPETITION['grade_fn']}: "
                          f"{type(exc).__name__}: {exc}") from None


def call_grade(grade: Any, submission: Any, answers: Any) -> float:
    """The competition's score; InvalidSubmission for what MLE-bench would score None."""
    invalid_error = mle.invalid_submission_error()
    try:
        score = grade(submission, answers)
    except (mle.MissingDependency, ModuleNotFoundError) as exc:
        raise GraderError(f"the competition's grade function needs a missing library: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - MLE-bench's Grader treats every exception as invalid
        if invalid_error is not None and isinstance(exc, invalid_error):
            raise InvalidSubmission(str(exc) or type(exc).__name__, {"error": type(exc).__name__}) from None
        raise InvalidSubmission(f"the competition's grade function failed on this submission "
                                f"({type(exc).__name__}: {exc}); MLE-bench scores that as invalid",
                                {"error": type(exc).__name__}) from None
    try:
        number = float(score)
    except (TypeError, ValueError):
        raise InvalidSubmission(f"the competition's grade function returned {score!r}, not a number") from None
    if not math.isfinite(number):
        raise InvalidSubmission(f"the competition's grade function returned {number} for this submission")
    return round(number, 5)


def grade(submission_path: Path, answers_path: Path) -> dict[str, Any]:
    """Grade one submission file against the answers file; the grade dict."""
    answers = load_answers(answers_path)
    function = grade_function()
    details: dict[str, Any] = {"competition": COMPETITION["competition_id"]}
    try:
        submission = read_submission(submission_path)
        details["n_rows"] = int(len(submission))
        score = call_grade(function, submission, answers)
    except InvalidSubmission as exc:
        return grading.invalid_grade(METRIC, str(exc), {**details, **(exc.details or {})})
    medals = COMPETITION["medals"]
    details.update(mle.rank(score, medals),
                   medal_thresholds={k: medals[k] for k in ("gold", "silver", "bronze", "median")},
                   lower_is_better=medals["lower_is_better"])
    return grading.make_grade(METRIC, True, score, None, details)


def grade_workspace() -> dict[str, Any]:
    workspace, private = env_path("CTXEVAL_WORKSPACE"), env_path("CTXEVAL_PRIVATE")
    env_path("CTXEVAL_OUTPUT")  # before any work: without it nothing can be graded
    return grade(workspace / COMPETITION["submission"], private / COMPETITION["answers"])


if __name__ == "__main__":
    grading.main(grade_workspace, METRIC)
