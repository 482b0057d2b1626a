"""The experiment-profiler bundle as an RL task in real containers: an agentic episode whose
(replayed, scripted) model edits files is graded by behaviour, and the warm environment resets
to the starter between episodes."""
from __future__ import annotations

import json

import pytest

from evaluator.agents import create_agent
from evaluator.bundles import load_bundle
from evaluator.hashing import iter_files
from evaluator.images import ImageBuilder
from evaluator.paths import BUNDLES_DIR
from evaluator.rl import BundleEnv
from evaluator.runs import RunPlan, execute
from evaluator.sandbox.base import folder_digest

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def profiler(docker_client):
    bundle = load_bundle(BUNDLES_DIR / "experiment_profiler")
    return bundle, ImageBuilder(client=docker_client).bundle_image(bundle)


def editing_cassette(path, bundle) -> None:
    """A scripted model that finishes the package by editing its files, runs it, then submits."""
    calls = []
    for file in iter_files(bundle.reference_dir):
        relative = file.relative_to(bundle.reference_dir).as_posix()
        calls.append(("write_file", {"path": relative, "content": file.read_text()}))
    calls += [("run_profiler", {}), ("submit", {"summary": "package finished"})]
    lines = [json.dumps({"text": f"step {i}", "tool_calls": [{"id": f"call_{i}", "name": name, "arguments": args}],
                         "usage": {"prompt_tokens": 100, "completion_tokens": 10}})
             for i, (name, args) in enumerate(calls)]
    path.write_text("\n".join(lines) + "\n")


def test_agentic_episode_that_edits_files_is_graded(tmp_path, profiler):
    bundle, image = profiler
    cassette = tmp_path / "edits.jsonl"
    editing_cassette(cassette, bundle)
    agent = create_agent("model", model=f"replay:{cassette}", mode="agentic", policy="short_context")
    plan = RunPlan(bundle=bundle, agent=agent, seeds=[0], backend="docker", root=tmp_path, run_id="prof")
    [result] = execute(plan, image.tag, image.input_hash)
    assert result["status"] == "completed", result["error"]
    assert result["stop_reason"] == "submitted"
    checks = result["grade"]["checks"]
    assert len(checks) >= 10 and all(c["passed"] for c in checks), [c for c in checks if not c["passed"]]
    assert result["success"] is True and result["score"] == 1.0 and result["output"]["valid"] is True


def test_untouched_starter_fails_with_reasons(tmp_path, profiler):
    bundle, image = profiler
    plan = RunPlan(bundle=bundle, agent=create_agent("noop"), seeds=[0], backend="docker", root=tmp_path,
                   run_id="noop")
    [result] = execute(plan, image.tag, image.input_hash)
    failed = [c for c in result["grade"]["checks"] if not c["passed"]]
    assert result["success"] is False and failed and all(c["reason"] for c in failed)


def test_env_episodes_reset_to_the_starter(profiler, docker_client):
    bundle, image = profiler
    with BundleEnv(bundle, image=image.tag, client=docker_client) as env:
        _, info = env.reset()
        starter = folder_digest(bundle.starter_dir)
        assert info["workspace_digest"] == starter
        for file in iter_files(bundle.reference_dir):
            env.step({"write_file": {"path": file.relative_to(bundle.reference_dir).as_posix(),
                                     "content": file.read_text()}})
        env.step({"exec": "python3 -m experiment_profiler.cli run --config \"$CTXEVAL_DATA/configs/"
                          "sample_experiment.yaml\" --output-dir results > /tmp/log 2>&1 & sleep 0.2"})
        _, reward, terminated, _, info = env.step({"tool": "run_profiler", "args": {}})
        _, reward, terminated, _, info = env.step({"submit": {}})
        assert terminated and reward == 1.0 and info["success"] is True
        _, info = env.reset()
        assert info["workspace_digest"] == starter
        _, reward, terminated, _, info = env.step({"submit": {}})
        assert terminated and reward < 1.0 and info["success"] is False
