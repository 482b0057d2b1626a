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
    """Every call of the experiment in execution order: enabled runs in manifest order; in a run,
    its prompts in the order it lists them (`all`: dataset order)."""
    by_id = {d.id: d for d in dialogues}
    calls: list[PlannedCall] = []
    for run in config.selected_runs():
        selected = dialogues if run.prompts is None else [by_id[p] for p in run.prompts]
        for dialogue in selected:
            calls.append(PlannedCall(len(calls), run.id, dialogue, run.model, run.temperature, run.max_tokens))
    return calls


def request_record(experiment_id: str, call: PlannedCall) -> dict[str, Any]:
    """The requests.jsonl line of a call."""
    return {
        "sequence": call.sequence, "experiment_id": experiment_id, "run_id": call.run_id,
        "prompt_id": call.dialogue.id, "model": call.model, "temperature": call.temperature,
        "max_tokens": call.max_tokens, "system": call.dialogue.system, "user": call.dialogue.user,
    }


def execute(client: AnthropicClient, call: PlannedCall) -> Completion:
    return client.complete(model=call.model, system=call.dialogue.system, user=call.dialogue.user,
                           temperature=call.temperature, max_tokens=call.max_tokens,
                           prompt_id=call.dialogue.id)
