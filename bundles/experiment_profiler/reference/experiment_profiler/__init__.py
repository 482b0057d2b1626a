"""Automated profiler for Claude fine-tuning experiments.

Run an experiment manifest (YAML) against the evaluation dialogues, log every request and
response as JSONL, compute quality metrics and summarize them:

    python -m experiment_profiler.cli run --config CONFIG.yaml --output-dir OUT
    python -m experiment_profiler.cli summarize --output-dir OUT

The helper library (anthropic_client, dataset, logging_utils, metrics) lives in $CTXEVAL_TOOLS;
it is put on sys.path here so the package also works without PYTHONPATH.
"""

from __future__ import annotations

import os
import sys

_tools = os.environ.get("CTXEVAL_TOOLS")
if _tools and _tools not in sys.path:
    sys.path.append(_tools)

__all__ = ["config", "runner", "simulation", "storage", "cli"]
