#!/usr/bin/env python3
"""Bundle tool `predict`.

Reads {"config": {...}} as JSON on stdin, fits the config on all of $CTXEVAL_DATA/train.csv
with the features of the workspace's features.py (no cross-validation), writes submission.csv
and metrics.json (cv fields null) into $CTXEVAL_WORKSPACE and prints the result as one JSON
object. Exit 0 on success, 2 for invalid arguments or config, 1 for any other failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nomadlib  # noqa: E402

if __name__ == "__main__":
    sys.exit(nomadlib.tool_main("predict", nomadlib.predict))
