"""Run an experiment: plan, call the model, log, score and summarize."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import metrics
from anthropic_client import AnthropicClient, Completion
from dataset import load_dialogues

from .config import ExperimentConfig, load_config
from .simulation import PlannedCall, execute, plan_calls, request_record
from .storage import REQUESTS_FILE, RESPONSES_FILE, ExperimentStorage

METRIC_NAMES = ("fact_coverage", "refusal_rate", "completion_rate", "geometric_mean")


def response_record(experiment_id: str, call: PlannedCall, completion: Completion) -> dict[str, Any]:
    """The responses.jsonl line of a call: the response and its per-prompt scores."""
    return {
        "sequence": call.sequence, "experiment_id": experiment_id, "run_id": call.run_id,
        "prompt_id": call.dialogue.id, "model": completion.model, "text": completion.text,
        "stop_reason": completion.stop_reason,
        "usage": {"input_tokens": completion.input_tokens, "output_tokens": completion.output_tokens},
        "simulated": completion.simulated,
        "expect_refusal": call.dialogue.expect_refusal,
        "fact_coverage": metrics.fact_coverage(completion.text, call.dialogue.required_facts),
        "refused": metrics.is_refusal(completion.text),
        "completed": metrics.is_complete(completion.stop_reason),
    }


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics over response records. Fact coverage averages the prompts that should be answered
    (expect_refusal false); the rates are over every record."""
    coverage = metrics.mean(r["fact_coverage"] for r in records if not r["expect_refusal"])
    completion = metrics.rate(r["completed"] for r in records)
    return {
        "n_prompts": len(records),
        "fact_coverage": coverage,
        "refusal_rate": metrics.rate(r["refused"] for r in records),
        "completion_rate": completion,
        "geometric_mean": metrics.geometric_mean([coverage, completion]),
    }


def run_experiment(config: ExperimentConfig | str | Path, output_dir: str | Path,
                   client: AnthropicClient | None = None) -> dict[str, Any]:
    """Execute the manifest's enabled runs; write the logs and summary.json; return the summary."""
    if not isinstance(config, ExperimentConfig):
        config = load_config(config)
    dialogues = load_dialogues(config.dataset)
    config.check_prompts([d.id for d in dialogues])  # everything validated before any call
    calls = plan_calls(config, dialogues)
    client = client or AnthropicClient()
    records: list[dict[str, Any]] = []
    with ExperimentStorage(output_dir) as storage:
        for call in calls:
            storage.log_request(request_record(config.experiment_id, call))
            completion = execute(client, call)
            record = response_record(config.experiment_id, call, completion)
            storage.log_response(record)
            records.append(record)
        runs = []
        for run in config.selected_runs():
            mine = [r for r in records if r["run_id"] == run.id]
            runs.append({"run_id": run.id, "model": run.model, "temperature": run.temperature,
                         "max_tokens": run.max_tokens, "prompt_ids": [r["prompt_id"] for r in mine],
                         "metrics": aggregate(mine)})
        summary = {
            "experiment_id": config.experiment_id, "model": config.model,
            "temperature": config.temperature, "max_tokens": config.max_tokens,
            "dataset": str(config.dataset), "simulated": client.simulated,
            "runs": runs, "skipped_runs": [run.id for run in config.skipped_runs()],
            "metrics": aggregate(records),
            "files": {"requests": REQUESTS_FILE, "responses": RESPONSES_FILE},
        }
        storage.write_summary(summary)
    return summary
