"""Probes in real episodes (Docker) on the long toy variant: asking never changes what the agent
is sent or billed, each policy's recall follows from what it keeps, and forgetting the decisive
fact costs the grade."""
from __future__ import annotations

from pathlib import Path

import pytest

from evaluator.agents import create_agent
from evaluator.bundles import load_bundle
from evaluator.episode.context import Budget
from evaluator.images import ImageBuilder
from evaluator.jsonschemas import validate
from evaluator.paths import BUNDLES_DIR
from evaluator.runs import RunPlan, execute

pytestmark = [pytest.mark.docker, pytest.mark.slow]

WINDOW_K = 4


class Recorder:
    """Wraps the agent's model: keeps every context it is sent for the agent's own calls."""

    def __init__(self, model):
        self.model, self.name, self.sent = model, model.name, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def complete(self, messages, **options):
        if not messages[-1].content.startswith("PROBE "):
            self.sent.append([(m.role, m.content, m.tool_call_id) for m in messages])
        return self.model.complete(messages, **options)


@pytest.fixture(scope="module")
def long_toy():
    return load_bundle(BUNDLES_DIR / "toy@long")


@pytest.fixture(scope="module")
def long_image(docker_client, long_toy):
    return ImageBuilder(client=docker_client).bundle_image(long_toy)


def window_policy(tmp_path: Path, k: int) -> str:
    path = tmp_path / f"window{k}.yaml"
    path.write_text(f"schema_version: 1\nname: window{k}\npolicy: sliding_window\nparams: {{k_turns: {k}}}\n"
                    "budget_tokens: 32000\nclarification: neutral\n")
    return str(path)


def run(tmp_path, bundle, image, policy, *, probes=True, steps=None, record=False, run_id="r"):
    agent = create_agent("model", mode="controller", policy=policy)
    if record:
        agent.model = Recorder(agent.model)
    plan = RunPlan(bundle=bundle, agent=agent, seeds=[0], backend="docker", root=tmp_path, run_id=run_id,
                   budget=Budget(max_steps=steps) if steps else None, probes=probes)
    [result] = execute(plan, image.tag, image.input_hash)
    assert result["status"] == "completed", result["error"]
    return result, agent


def test_probing_changes_nothing_the_agent_is_sent_or_billed(tmp_path, long_toy, long_image):
    policy = window_policy(tmp_path, 2)
    on, agent_on = run(tmp_path, long_toy, long_image, policy, probes=True, steps=10, record=True, run_id="on")
    off, agent_off = run(tmp_path, long_toy, long_image, policy, probes=False, steps=10, record=True, run_id="off")
    assert agent_on.model.sent == agent_off.model.sent  # byte for byte, every call
    assert len(agent_on.model.sent) == on["metrics"]["llm_calls"] >= 8
    for key in ("prompt_tokens", "completion_tokens", "llm_calls", "context_tokens", "steps"):
        assert on["metrics"][key] == off["metrics"][key], key
    assert on["metrics"]["probe_tokens"] > 0 and off["metrics"]["probe_tokens"] == 0
    assert on["agent"]["probes"] == "on" and off["agent"]["probes"] == "off"
    assert "probes" not in off and off.get("probe_recall") is None
    asked = [r for r in on["probes"] if r["status"] == "answered"]
    assert {(r["id"], r["asked_call"]) for r in asked} >= {("leak_column", 4), ("leak_column", 6)}
    never = [r for r in on["probes"] if r["planted_call"] is None]
    assert never and all(r["status"] == "not_planted" and r["correct"] is None for r in never)
    validate(on, "episode_result", "result.json")


@pytest.fixture(scope="module")
def full_and_window(tmp_path_factory, long_toy, long_image):
    root = tmp_path_factory.mktemp("long")
    full, _ = run(root, long_toy, long_image, "full_history", run_id="full")
    window, _ = run(root, long_toy, long_image, window_policy(root, WINDOW_K), run_id="window")
    return full, window


def test_full_history_recalls_every_planted_fact(full_and_window):
    full, _ = full_and_window
    answered = [r for r in full["probes"] if r["status"] == "answered"]
    assert len(answered) >= 20 and all(r["correct"] and r["fact_in_context"] for r in answered)
    assert full["probe_recall"]["overall"] == 1.0


def test_a_window_of_k_turns_recalls_exactly_the_facts_within_k(full_and_window):
    _, window = full_and_window
    answered = [r for r in window["probes"] if r["status"] == "answered"]
    near = [r for r in answered if r["distance"] <= WINDOW_K]
    far = [r for r in answered if r["distance"] > WINDOW_K]
    assert near and far
    assert all(r["correct"] and r["fact_in_context"] for r in near)
    assert not any(r["correct"] or r["fact_in_context"] for r in far)
    maps = window["metrics"]["context_maps"]
    assert all(set(m["states"][:-WINDOW_K]) <= {"D"} for m in maps)


def test_forgetting_the_decisive_fact_costs_the_grade(full_and_window):
    full, window = full_and_window
    assert full["success"] is True and window["success"] is False
    assert full["score"] > window["score"]
    final_full = full["metrics"]["iterations"][-1]["arguments"]["config"]
    final_window = window["metrics"]["iterations"][-1]["arguments"]["config"]
    assert "f23" in final_full.get("drop_features", [])  # it remembered: the leak stays out
    assert "f23" not in final_window.get("drop_features", [])  # it forgot, and its CV rewarded the leak
