#!/usr/bin/env python3
"""Train the model described in config.json and write metrics.json and predictions.csv.

Does exactly what the train_and_evaluate tool does (same code, from $CTXEVAL_TOOLS/toylib.py):
5-fold cross-validated accuracy on the training data, then a fit on all of it and
predictions for every test id. Run it from the workspace: python3 train.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if not os.environ.get("CTXEVAL_TOOLS"):
    sys.exit("train.py: CTXEVAL_TOOLS is not set (it points at the folder holding toylib.py)")
sys.path.insert(0, os.environ["CTXEVAL_TOOLS"])

import toylib  # noqa: E402

workspace = toylib.env_path("CTXEVAL_WORKSPACE")
try:
    config = json.loads((Path(__file__).resolve().parent / "config.json").read_text())
    result = toylib.train_and_evaluate(config, toylib.env_path("CTXEVAL_DATA"), workspace)
except (json.JSONDecodeError, toylib.ConfigError) as exc:
    sys.exit(f"invalid config.json: {exc}")
print(json.dumps(result))
