#!/usr/bin/env python3
"""Starter of a bundle imported from MLE-bench (written by `ctxeval import mlebench`).

Copies the competition's sample submission from the read-only data folder ($CTXEVAL_DATA) to
submission.csv in the workspace, the file the grader scores, and writes metrics.json describing it.
The sample is a valid submission of the right format with a weak score: replace this script's work
with a real model. Run it from the workspace: python3 make_submission.py
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

SAMPLE_SUBMISSION = "sample_submission.csv"  # under $CTXEVAL_DATA; set by `ctxeval import mlebench`
SUBMISSION = "submission.csv"
METRICS = "metrics.json"


def main() -> int:
    data = os.environ.get("CTXEVAL_DATA")
    if not data:
        print("make_submission.py: CTXEVAL_DATA is not set (the folder of the public data)", file=sys.stderr)
        return 1
    sample = Path(data) / SAMPLE_SUBMISSION
    if not sample.is_file():
        print(f"make_submission.py: {sample} not found", file=sys.stderr)
        return 1
    workspace = Path(os.environ.get("CTXEVAL_WORKSPACE") or Path.cwd())
    shutil.copyfile(sample, workspace / SUBMISSION)
    metrics = {"submission": SUBMISSION, "validation_score": None,
               "notes": f"the sample submission ({SAMPLE_SUBMISSION}), copied unchanged"}
    (workspace / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {SUBMISSION} (a copy of {SAMPLE_SUBMISSION}) and {METRICS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
