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
from conftest import edited_toy, unreachable

pytestmark = [pytest.mark.docker, pytest.mark.slow]

WINDOW_K = 4
STEPS = 22  # ~20 proposals: probes asked up to call 20 (distances 1-18), two episodes in ~4 minutes


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


PROBES = [  # on the base toy bundle, whose tool prints no timings: two runs are byte-comparable
    {"id": "unit", "fact": "Data owner: every feature is in millivolts.", "plant": {"after_call": 1},
     "ask": {"before_calls": [2, 4, 6]}, "question": "In which unit are the features?",
     "answer": {"text": "millivolts"}},
    {"id": "late", "fact": "The report is due on 2031-01-02.", "plant": {"after_call": 40},
     "ask": {"before_calls": [41]}, "question": "When is the report due?", "answer": {"text": "2031-01-02"}},
]


@pytest.fixture(scope="module")
def probed_toy(tmp_path_factory):
    """The toy bundle with probes and a target nobody reaches, so episodes run to their budget."""
    def edit(raw):
        unreachable(raw)
        raw.pop("variants", None)
        raw["probes"] = PROBES
    return edited_toy(tmp_path_factory.mktemp("probed"), edit)


def test_probing_changes_nothing_the_agent_is_sent_or_billed(tmp_path, probed_toy, toy_image):
    policy = window_policy(tmp_path, 2)
    on, agent_on = run(tmp_path, probed_toy, toy_image, policy, probes=True, steps=9, record=True, run_id="on")
    off, agent_off = run(tmp_path, probed_toy, toy_image, policy, probes=False, steps=9, record=True, run_id="off")
    assert agent_on.model.sent == agent_off.model.sent  # byte for byte, every call
    assert len(agent_on.model.sent) == on["metrics"]["llm_calls"] >= 6
    assert any("millivolts" in content for call in agent_on.model.sent for _, content, _ in call)  # planted
    for key in ("prompt_tokens", "completion_tokens", "llm_calls", "context_tokens", "steps", "cost_usd"):
        assert on["metrics"][key] == off["metrics"][key], key
    assert on["metrics"]["probe_tokens"] > 0 and off["metrics"]["probe_tokens"] == 0
    assert on["agent"]["probes"] == "on" and off["agent"]["probes"] == "off"
    assert "probes" not in off and off.get("probe_recall") is None
    records = {(r["id"], r["asked_call"]): r for r in on["probes"]}
    assert records["unit", 2]["correct"] is True and records["unit", 2]["distance"] == 1
    assert records["unit", 6]["correct"] is False and records["unit", 6]["fact_in_context"] is False  # k=2
    assert records["late", 41]["status"] == "not_planted" and records["late", 41]["correct"] is None
    assert on["probe_recall"]["not_planted"] == 1
    validate(on, "episode_result", "result.json")


@pytest.fixture(scope="module")
def full_and_window(tmp_path_factory, long_toy, long_image):
    root = tmp_path_factory.mktemp("long")
    full, _ = run(root, long_toy, long_image, "full_history", steps=STEPS, run_id="full")
    window, _ = run(root, long_toy, long_image, window_policy(root, WINDOW_K), steps=STEPS, run_id="window")
    return full, window


def test_full_history_recalls_every_planted_fact(full_and_window):
    full, _ = full_and_window
    answered = [r for r in full["probes"] if r["status"] == "answered"]
    assert len(answered) >= 12 and all(r["correct"] and r["fact_in_context"] for r in answered)
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
    """(The success rates over 10 seeds and the whole budget: benchmarks/context_study.py.)"""
    full, window = full_and_window
    assert window["success"] is False
    assert full["score"] > window["score"] + 0.1  # the leak's CV is high, its test accuracy is not
    final_full = full["metrics"]["iterations"][-1]["arguments"]["config"]
    final_window = window["metrics"]["iterations"][-1]["arguments"]["config"]
    assert "f23" in final_full.get("drop_features", [])  # it remembered: the leak stays out
    assert "f23" not in final_window.get("drop_features", [])  # it forgot, and its CV rewarded the leak
