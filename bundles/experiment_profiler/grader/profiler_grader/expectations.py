"""What a correct submission does with a manifest, computed from the public data only."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .common import MOCKS_FILE

# The grader's own refusal detection (the same phrases as tools/metrics.py, written out here so a
# change to the tools cannot silently move the expectations).
REFUSAL_MARKERS = (
    "i can't help", "i cannot help", "i can't assist", "i cannot assist", "i can't provide",
    "i cannot provide", "i won't help", "i will not help", "i won't provide", "i'm not able to help",
    "i am not able to help", "i'm unable to help", "i am unable to help", "i must decline",
)
FALLBACK_TEXT = "[simulated] No canned response is available for prompt {prompt_id}."


def normalize(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return re.sub(r"\s+", " ", text).strip().lower()


def coverage_of(text: str, facts: list[str]) -> float:
    if not facts:
        return 1.0
    haystack = normalize(text)
    return sum(1 for f in facts if normalize(f) in haystack) / len(facts)


def refusal_of(text: str) -> bool:
    haystack = normalize(text)
    return any(marker in haystack for marker in REFUSAL_MARKERS)


def simulate(canned: dict[str, str], prompt_id: str, max_tokens: int) -> tuple[str, str]:
    text = canned.get(prompt_id, FALLBACK_TEXT.format(prompt_id=prompt_id))
    words = text.split()
    if len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "max_tokens"
    return text, "end_turn"


def geometric_mean(values: list[float]) -> float:
    if not values or any(v == 0 for v in values):
        return 0.0
    return math.exp(sum(math.log(v) for v in values) / len(values))


def aggregate(calls: list[dict[str, Any]]) -> dict[str, Any]:
    answerable = [c["fact_coverage"] for c in calls if not c["expect_refusal"]]
    coverage = sum(answerable) / len(answerable) if answerable else 0.0
    completion = sum(c["completed"] for c in calls) / len(calls) if calls else 0.0
    return {"n_prompts": len(calls), "fact_coverage": coverage,
            "refusal_rate": sum(c["refused"] for c in calls) / len(calls) if calls else 0.0,
            "completion_rate": completion, "geometric_mean": geometric_mean([coverage, completion])}


@dataclass
class Expected:
    """What a correct submission does with one manifest."""

    experiment_id: str
    model: str
    temperature: float
    max_tokens: int
    calls: list[dict[str, Any]]  # in execution order
    runs: list[dict[str, Any]]  # executed runs: run_id, model, temperature, max_tokens, prompt_ids, metrics
    skipped: list[str]
    metrics: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "model": self.model, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "runs": self.runs, "skipped_runs": self.skipped,
                "metrics": self.metrics}

    def by_key(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(c["run_id"], c["prompt_id"]): c for c in self.calls}


def expect_file(manifest_path: Path, data: Path) -> Expected:
    """The expectations of a manifest file (its dataset relative to its folder or absolute)."""
    return expect(yaml.safe_load(manifest_path.read_text()), manifest_path.parent, data)


def expect(manifest: dict[str, Any], base: Path, data: Path) -> Expected:
    """Interpret a (valid) manifest exactly as task.md specifies; a relative dataset is relative to base."""
    dialogues = json.loads((base / manifest["dataset"]).read_text())["dialogues"]
    by_id = {d["id"]: d for d in dialogues}
    canned = {k: v["text"] for k, v in json.loads((data / MOCKS_FILE).read_text())["responses"].items()}
    calls: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    skipped: list[str] = []
    for run in manifest["runs"]:
        if not run.get("enabled", True):
            skipped.append(run["id"])
            continue
        model = run.get("model", manifest["model"])
        temperature = float(run.get("temperature", manifest["temperature"]))
        max_tokens = int(run.get("max_tokens", manifest["max_tokens"]))
        selected = dialogues if run["prompts"] == "all" else [by_id[p] for p in run["prompts"]]
        mine = [expected_call(manifest["experiment_id"], run["id"], model, temperature, max_tokens, d, canned,
                              len(calls) + i) for i, d in enumerate(selected)]
        calls += mine
        runs.append({"run_id": run["id"], "model": model, "temperature": temperature, "max_tokens": max_tokens,
                     "prompt_ids": [c["prompt_id"] for c in mine], "metrics": aggregate(mine)})
    return Expected(manifest["experiment_id"], manifest["model"], float(manifest["temperature"]),
                    int(manifest["max_tokens"]), calls, runs, skipped, aggregate(calls))


def expected_call(experiment_id: str, run_id: str, model: str, temperature: float, max_tokens: int,
                  dialogue: dict[str, Any], canned: dict[str, str], sequence: int) -> dict[str, Any]:
    """One call: its request, the simulated client's response and the response's metrics."""
    text, stop = simulate(canned, dialogue["id"], max_tokens)
    return {"sequence": sequence, "experiment_id": experiment_id, "run_id": run_id,
            "prompt_id": dialogue["id"], "model": model, "temperature": temperature, "max_tokens": max_tokens,
            "system": dialogue["system"], "user": dialogue["user"], "text": text, "stop_reason": stop,
            "expect_refusal": bool(dialogue.get("expect_refusal", False)),
            "fact_coverage": coverage_of(text, dialogue.get("required_facts", [])),
            "refused": refusal_of(text), "completed": stop == "end_turn"}
