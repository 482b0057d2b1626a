"""Run an experiment: plan, call the model, log, score and summarize."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import metrics  # noqa: F401 - the metric helpers of $CTXEVAL_TOOLS/metrics.py
from anthropic_client import AnthropicClient, Completion
from dataset import load_dialogues  # noqa: F401

from .config import ExperimentConfig, load_config  # noqa: F401
from .simulation import PlannedCall, execute, plan_calls, request_record  # noqa: F401
from .storage import ExperimentStorage  # noqa: F401

METRIC_NAMES = ("fact_coverage", "refusal_rate", "completion_rate", "geometric_mean")


def response_record(experiment_id: str, call: PlannedCall, completion: Completion) -> dict[str, Any]:
    """The responses.jsonl line of a call: the response and its per-prompt scores (task.md)."""
    # TODO
    raise NotImplementedError("TODO: response_record")


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """n_prompts and the four metrics over some response records (definitions: task.md)."""
    # TODO
    raise NotImplementedError("TODO: aggregate")


def run_experiment(config: ExperimentConfig | str | Path, output_dir: str | Path,
                   client: AnthropicClient | None = None) -> dict[str, Any]:
    """Execute the manifest's enabled runs; write the logs and summary.json; return the summary."""
    # TODO: load and validate everything first, then plan, call, log, score and summarize.
    raise NotImplementedError("TODO: run_experiment")
