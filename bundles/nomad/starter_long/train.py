#!/usr/bin/env python3
"""Train the model of config.json on the features of features.py; write submission.csv and metrics.json.

Does exactly what the train_and_evaluate tool does (same code, from $CTXEVAL_TOOLS/nomadlib.py):
seeded 5-fold cross-validated RMSLE on the public training data, then a fit on all of it and
predictions for every test id. Run it from the workspace: python3 train.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if not os.environ.get("CTXEVAL_TOOLS"):
    sys.exit("train.py: CTXEVAL_TOOLS is not set (it points at the folder holding nomadlib.py)")
sys.path.insert(0, os.environ["CTXEVAL_TOOLS"])

import nomadlib  # noqa: E402

workspace = Path(__file__).resolve().parent
try:
    config = json.loads((workspace / "config.json").read_text())
    result = nomadlib.train_and_evaluate(config, nomadlib.env_path("CTXEVAL_DATA"), workspace)
except (json.JSONDecodeError, nomadlib.ConfigError) as exc:
    sys.exit(f"train.py: invalid config.json: {exc}")
except nomadlib.FeatureError as exc:
    sys.exit(f"train.py: features.py: {exc}")
print(json.dumps(result))
