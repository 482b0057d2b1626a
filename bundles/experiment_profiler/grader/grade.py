#!/usr/bin/env python3
"""Behavioural grader of the experiment_profiler bundle, in two modes (see bundle.yaml):

    python3 grade.py plan   # grader.run.plan: write $CTXEVAL_OUTPUT/plan.json and inputs/
    python3 grade.py        # grader.command: check $CTXEVAL_RUN_RESULTS, write grade.json

The plan runs the submission nowhere: the evaluator runs the planned commands (the submission's
CLI with PYTHONPATH=$CTXEVAL_WORKSPACE:$CTXEVAL_TOOLS, no API key, each in a fresh folder under a
timeout) in a sandbox of their own, which holds neither this folder nor the grader's output. The
check then reads what they printed and wrote and compares it with expectations it computes itself
from the public data ($CTXEVAL_DATA: the manifest, dialogues.json, mock_responses.json): which
prompts run in which order with which settings, what is logged, the metrics, the refusal, the CLI's
two commands and the table (rich when importable, plain ASCII when not).

grade.json: one entry per check in `checks` ({name, passed, reason}), score = fraction of checks
passed, valid = true whenever the checks could run (a broken submission fails checks; it is not
invalid). Exits non-zero only when it cannot grade at all (missing environment, data or run
results: a bundle or evaluator bug). Reading the environment, writing the output files and the exit
codes are ctxeval's grading helper's ($CTXEVAL_GRADING_LIB/ctxeval_grading.py).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.environ["CTXEVAL_GRADING_LIB"])
import ctxeval_grading as grading  # noqa: E402
from profiler_grader import check, plan  # noqa: E402

MODES = {"plan": plan.main, "check": check.main}
DEFAULT_MODE = "check"


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and argv[0] not in MODES):
        print(f"usage: grade.py [{'|'.join(MODES)}]  (default {DEFAULT_MODE})", file=sys.stderr)
        return 2
    return MODES[argv[0] if argv else DEFAULT_MODE]()


if __name__ == "__main__":
    grading.run(lambda: main(sys.argv[1:]))
