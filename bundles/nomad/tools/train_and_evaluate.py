#!/usr/bin/env python3
"""Bundle tool `train_and_evaluate`.

Reads {"config": {...}} as JSON on stdin, scores the config by seeded 5-fold cross-validated
RMSLE (mean over the two targets) on $CTXEVAL_DATA/train.csv with the features of the
workspace's features.py, then fits it on all of train, writes submission.csv and metrics.json
into $CTXEVAL_WORKSPACE and prints the result as one JSON object.
Exit 0 on success, 2 for invalid arguments or config, 1 for any other failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nomadlib  # noqa: E402

if __name__ == "__main__":
    sys.exit(nomadlib.tool_main("train_and_evaluate", nomadlib.train_and_evaluate))
