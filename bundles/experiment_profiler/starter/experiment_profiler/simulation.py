"""Plan an experiment's model calls and make them through the Claude client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anthropic_client import AnthropicClient, Completion
from dataset import Dialogue

from .config import ExperimentConfig


@dataclass(frozen=True)
class PlannedCall:
    sequence: int  # 0-based position in the whole experiment
    run_id: str
    dialogue: Dialogue
    model: str
    temperature: float
    max_tokens: int


def plan_calls(config: ExperimentConfig, dialogues: list[Dialogue]) -> list[PlannedCall]:
    """Every call of the experiment, in execution order."""
    # TODO: the selected runs in manifest order; in a run, its prompts in the order it lists them
    # (`all`: every dialogue in dataset order); each call with the run's effective settings.
    raise NotImplementedError("TODO: plan_calls")


def request_record(experiment_id: str, call: PlannedCall) -> dict[str, Any]:
    """The requests.jsonl line of a call (fields: task.md)."""
    # TODO
    raise NotImplementedError("TODO: request_record")


def execute(client: AnthropicClient, call: PlannedCall) -> Completion:
    """Send one planned call through the client."""
    # TODO: client.complete(...) with the call's settings; pass prompt_id so the simulation answers.
    raise NotImplementedError("TODO: execute")
