#!/usr/bin/env python3
"""Train the model in config.json exactly as the train_and_evaluate tool does (ctxeval_tabular, from
$CTXEVAL_BUNDLE_LIB) and write metrics.json and predictions.csv. Run it from the workspace."""
import os
import sys
from pathlib import Path

sys.path.insert(0, os.environ["CTXEVAL_BUNDLE_LIB"])
from ctxeval_tabular.tool import run_config_file  # noqa: E402

sys.exit(run_config_file(Path(os.environ["CTXEVAL_TOOLS"]), Path(__file__).resolve().parent / "config.json"))
