"""Whole episodes in real containers: results are schema-valid, invalid output is recorded with
its reason, private answers stay out of the agent's container, and runs resume without loss."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evaluator.agents import create_agent
from evaluator.agents.fixed import ScriptedActionsAgent
from evaluator.jsonschemas import validate
from evaluator.paths import BUNDLES_DIR, PROJECT_ROOT
from evaluator.runs import RUN_FILE, SUMMARY_FILE, RunPlan, execute

pytestmark = pytest.mark.docker


def actions_file(tmp_path: Path, actions: list[dict]) -> Path:
    path = tmp_path / "actions.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "actions": actions}))
    return path


def run_actions(tmp_path, toy_bundle, toy_image, actions, run_id="t"):
    agent = ScriptedActionsAgent(actions_file(tmp_path, actions))
    plan = RunPlan(bundle=toy_bundle, agent=agent, seeds=[0], backend="docker", root=tmp_path / "runs",
                   run_id=run_id)
    [result] = execute(plan, toy_image.tag, toy_image.input_hash)
    return plan, result


def test_output_violating_its_schema_is_recorded_invalid_with_reason(tmp_path, toy_bundle, toy_image):
    bad = {"metric": "accuracy", "cv_accuracy": "high", "config": {"model": "knn"}}
    plan, result = run_actions(tmp_path, toy_bundle, toy_image, [
        {"write_file": {"path": "metrics.json", "content": json.dumps(bad)}}, {"submit": {}}])
    assert result["status"] == "completed"
    assert result["output"]["present"] is True and result["output"]["valid"] is False
    reasons = " | ".join(result["output"]["errors"])
    assert "$.cv_accuracy" in reasons and "'high' is not of type 'number'" in reasons
    assert "'predictions' is a required property" in reasons
    assert result["success"] is False
    on_disk = json.loads((plan.run_dir / "episodes" / plan.episode_id(0) / "result.json").read_text())
    validate(on_disk, "episode_result", "result.json")
    assert on_disk == result


def test_non_json_output_is_recorded_invalid(tmp_path, toy_bundle, toy_image):
    _, result = run_actions(tmp_path, toy_bundle, toy_image, [
        {"write_file": {"path": "metrics.json", "content": "{not json"}}, {"submit": {}}])
    assert result["output"]["valid"] is False
    assert result["output"]["errors"][0].startswith("metrics.json: not JSON")


def test_private_answers_never_enter_the_agent_container(tmp_path, toy_bundle, toy_image, toy_data):
    private_names = sorted(p.name for p in toy_data.private.iterdir())
    probe = "ls -A /private 2>&1; " + "; ".join(
        f"find / -xdev -name {name} 2>/dev/null" for name in private_names) + "; echo END"
    plan, result = run_actions(tmp_path, toy_bundle, toy_image, [{"exec": probe}, {"submit": {}}])
    events = [json.loads(line) for line in
              (plan.run_dir / "episodes" / plan.episode_id(0) / "events.jsonl").read_text().splitlines()]
    [step] = [e for e in events if e.get("action") == "exec"]
    stdout = step["result"]["stdout"]
    assert stdout.strip().endswith("END")
    for name in private_names:
        assert name not in stdout
    # the grader, in its own container, does see them: a correct submission is scored
    assert result["grade"] is not None


def test_controller_episode_improves_on_the_baseline(tmp_path, toy_bundle, toy_image):
    agent = create_agent("model", model="scripted:hill_climb", policy="full_history")
    plan = RunPlan(bundle=toy_bundle, agent=agent, seeds=[0], backend="docker", root=tmp_path, run_id="ctl")
    [result] = execute(plan, toy_image.tag, toy_image.input_hash)
    assert result["status"] == "completed" and result["stop_reason"] == "target_reached"
    assert result["success"] is True and result["score"] >= toy_bundle.target.target_score()
    iterations = result["metrics"]["iterations"]
    baseline = iterations[0]
    assert baseline["iteration"] == 0 and baseline["arguments"]["config"] == json.loads(
        (toy_bundle.starter_dir / "config.json").read_text())
    assert baseline["score"] < toy_bundle.target.target_score()  # the starter does not reach the target
    proposals = iterations[1:]
    assert len(proposals) >= 2 and result["metrics"]["llm_calls"] == len(proposals)
    assert result["metrics"]["prompt_tokens"] > 0 and len(result["metrics"]["context_tokens"]) == len(proposals)
    # full history: every call sees more than the previous one
    curve = result["metrics"]["context_tokens"]
    assert all(b > a for a, b in zip(curve, curve[1:]))
    assert {"metrics.json", "predictions.csv"} <= set(result["artefacts"])


def test_resume_finishes_a_run_without_redoing_finished_episodes(tmp_path, toy_bundle, toy_image):
    agent = create_agent("noop")
    plan = RunPlan(bundle=toy_bundle, agent=agent, seeds=[0, 1], backend="docker", root=tmp_path, run_id="r1")
    first = execute(plan, toy_image.tag, toy_image.input_hash)
    kept = plan.run_dir / "episodes" / plan.episode_id(0) / "result.json"
    lost = plan.run_dir / "episodes" / plan.episode_id(1) / "result.json"
    kept_bytes, kept_mtime = kept.read_bytes(), kept.stat().st_mtime_ns
    lost.unlink()  # as if the evaluator died during episode 1
    second = execute(plan, toy_image.tag, toy_image.input_hash)
    assert kept.read_bytes() == kept_bytes and kept.stat().st_mtime_ns == kept_mtime
    assert lost.exists()
    assert [r["episode_id"] for r in second] == [r["episode_id"] for r in first]
    assert list((plan.run_dir / "aborted").iterdir())  # the interrupted attempt is kept aside, not lost
    summary = json.loads((plan.run_dir / SUMMARY_FILE).read_text())
    assert summary["episodes"] == 2 and summary["successes"] == 0
    assert json.loads((plan.run_dir / RUN_FILE).read_text())["images"]["toy"]["image"] == toy_image.tag
    assert not list(plan.run_dir.rglob("*.tmp"))


def test_cli_run_and_check_on_the_toy_bundle(tmp_path):
    env = {**os.environ, "CTXEVAL_RUNS_DIR": str(tmp_path)}
    cli = [sys.executable, "-m", "evaluator"]
    proc = subprocess.run(cli + ["run", str(BUNDLES_DIR / "toy"), "--run-id", "cli"], capture_output=True,
                          text=True, env=env, cwd=PROJECT_ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "cli" / "episodes" / "toy-controller-full_history-scripted_hill_climb-s0" / "result.json").read_text())
    validate(result, "episode_result", "result.json")
    assert result["sandbox"] == {"backend": "docker", "isolated": True, "reused": False, "episodes_before": 0,
                                 "retired": None}  # the run's only episode: kept warm until the run ended
    assert result["bundle"]["image"].startswith("ctxeval/bundle-toy:")
    check = subprocess.run(cli + ["check", str(BUNDLES_DIR / "toy")], capture_output=True, text=True,
                           env=env, cwd=PROJECT_ROOT, timeout=600)
    assert check.returncode == 0, check.stderr
    assert "PASS oracle passes" in check.stderr and "PASS noop fails" in check.stderr
    assert "bundle toy is sound" in check.stdout
