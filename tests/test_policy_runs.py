"""Every policy runs in both modes on the toy bundle, and the recorded metrics differ the way
the policy implies: full history's context grows, a sliding window's stays flat."""
from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import pytest
import yaml

from evaluator.agents import create_agent
from evaluator.paths import PROJECT_ROOT
from evaluator.runs import RunPlan, execute
from evaluator.episode.context import Budget
from policies import POLICIES, list_presets
from conftest import edited_toy, unreachable

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("mode", ["agentic", "controller"])
@pytest.mark.parametrize("policy", sorted(POLICIES) + ["short_context", "long_context"])
def test_every_policy_runs_in_both_modes(tmp_path, toy_bundle, toy_image, policy, mode):
    agent = create_agent("model", mode=mode, policy=policy)
    plan = RunPlan(bundle=toy_bundle, agent=agent, seeds=[0], backend="docker", root=tmp_path, run_id="p",
                   budget=Budget(max_steps=8))
    [result] = execute(plan, toy_image.tag, toy_image.input_hash)
    assert result["status"] == "completed", result["error"]
    assert result["agent"]["policy"]["name"] == policy and result["agent"]["mode"] == mode
    metrics = result["metrics"]
    assert metrics["llm_calls"] >= 1 and len(metrics["context_tokens"]) == metrics["llm_calls"]
    assert all(sent <= full for sent, full in zip(metrics["context_tokens"], metrics["full_history_tokens"]))
    assert 0 < metrics["compression_ratio"] <= 1


@pytest.fixture(scope="module")
def unreachable_toy(tmp_path_factory, docker_client):
    """The toy bundle with a target nobody reaches, so episodes run to their step budget."""
    return edited_toy(tmp_path_factory.mktemp("hard"), unreachable)


def curve(tmp_path, bundle, image, mode, policy, steps=10):
    agent = create_agent("model", mode=mode, policy=policy)
    plan = RunPlan(bundle=bundle, agent=agent, seeds=[0], backend="docker", root=tmp_path, run_id=f"{mode}-{Path(policy).stem}",
                   budget=Budget(max_steps=steps))
    [result] = execute(plan, image.tag, image.input_hash)
    assert result["stop_reason"] == "max_steps"
    return result["metrics"]


def window_file(tmp_path, k_turns: int) -> str:
    """A policy given as a YAML file (the third form --policy accepts): a k-turn window."""
    path = tmp_path / f"window-{k_turns}.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "name": f"window-{k_turns}", "description": "k-turn window",
                                    "policy": "sliding_window", "params": {"k_turns": k_turns},
                                    "budget_tokens": None, "clarification": "neutral"}))
    return str(path)


@pytest.mark.parametrize("mode", ["agentic", "controller"])
def test_full_history_grows_while_a_window_stays_flat(tmp_path, unreachable_toy, toy_image, mode):
    full = curve(tmp_path, unreachable_toy, toy_image, mode, "full_history", steps=6)["context_tokens"]
    window_metrics = curve(tmp_path, unreachable_toy, toy_image, mode, window_file(tmp_path, 2), steps=6)
    window = window_metrics["context_tokens"]
    assert all(b > a for a, b in zip(full, full[1:])), full
    tail = window[3:]
    assert len(tail) >= 2 and max(tail) - min(tail) < 0.15 * max(tail), window
    assert window[-1] < full[-1] and window_metrics["compression_ratio"] < 1


def test_dropping_history_makes_the_scripted_model_repeat_work(tmp_path, unreachable_toy, toy_image):
    """The offline model decides only from its context: a 1-turn window forgets what it tried."""
    def tried(policy):
        metrics = curve(tmp_path, unreachable_toy, toy_image, "controller", policy, steps=6)
        configs = [str(i["arguments"]) for i in metrics["iterations"]]
        return len(configs), len(set(configs))
    full_total, full_unique = tried("full_history")
    window_total, window_unique = tried(window_file(tmp_path, 1))
    assert full_unique == full_total  # full history never repeats a configuration
    assert window_unique < window_total  # a window that forgets repeats itself


def test_cli_lists_policies_and_presets():
    proc = subprocess.run([sys.executable, "-m", "evaluator", "policies"], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    for name in POLICIES:
        assert name in proc.stdout
    for preset in list_presets():
        assert preset.name in proc.stdout
    assert "k_turns=6" in proc.stdout
