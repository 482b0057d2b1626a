"""The experiment_profiler bundle on the host, without Docker: manifest, data stage, tools, grader.

The grader runs as in its container (CTXEVAL_WORKSPACE read-only, CTXEVAL_TOOLS, CTXEVAL_DATA,
CTXEVAL_OUTPUT, CTXEVAL_GRADER): the reference must pass every check, the untouched starter must
fail all but the two it is given, with reasons.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from evaluator.bundles import load_bundle
from evaluator.jsonschemas import project_schema, violations
from evaluator.paths import BUNDLES_DIR

BUNDLE = BUNDLES_DIR / "experiment_profiler"
TOOLS = BUNDLE / "tools"
GRADER = BUNDLE / "grader"
STARTER_PASSES = {"package_imports", "cli_commands"}


def load_module(path: Path, name: str) -> ModuleType:
    """Import one file under a unique name (the tools' generic names must not collide)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ep_data")
    proc = subprocess.run([sys.executable, str(BUNDLE / "data" / "prepare.py"), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out / "public"


@pytest.fixture(scope="module")
def metrics() -> ModuleType:
    return load_module(TOOLS / "metrics.py", "ep_tools_metrics")


@pytest.fixture(scope="module")
def client_module() -> ModuleType:
    return load_module(TOOLS / "anthropic_client.py", "ep_tools_anthropic_client")


@pytest.fixture(scope="module")
def grader_module() -> ModuleType:
    return load_module(GRADER / "grade.py", "ep_grader")


def make_workspace(root: Path, *layers: Path) -> Path:
    """Copy the layers over each other (as the oracle copies reference/ over starter/)."""
    workspace = root / "workspace"
    for layer in layers:
        shutil.copytree(layer, workspace, dirs_exist_ok=True)
    return workspace


def read_only(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def writable(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def run_grader(workspace: Path, data: Path, tmp_path: Path) -> dict:
    output = tmp_path / "grade_output"
    output.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env.update(CTXEVAL_WORKSPACE=str(workspace), CTXEVAL_TOOLS=str(TOOLS), CTXEVAL_DATA=str(data),
               CTXEVAL_OUTPUT=str(output), CTXEVAL_GRADER=str(GRADER), TMPDIR=str(tmp_path))
    read_only(workspace)
    try:
        proc = subprocess.run([sys.executable, str(GRADER / "grade.py")], env=env, capture_output=True,
                              text=True, timeout=300)
    finally:
        writable(workspace)
    assert proc.returncode == 0, proc.stderr
    grade = json.loads((output / "grade.json").read_text())
    assert not violations(grade, project_schema("grade"), "grade.json")
    return grade


# -- manifest and data stage -------------------------------------------------------------------------------
def test_bundle_loads_as_an_agentic_all_checks_task():
    bundle = load_bundle(BUNDLE)
    assert bundle.id == "experiment_profiler"
    assert bundle.controller is None
    assert bundle.target.metric == "checks_passed" and bundle.target.success.rule == "all_checks"
    assert [t.name for t in bundle.tools] == ["run_profiler"]
    assert bundle.output_path == bundle.grader_submission == "results/summary.json"
    assert bundle.data is not None and bundle.data.private is None


def test_cli_validate_accepts_the_bundle():
    proc = subprocess.run([sys.executable, "-m", "evaluator", "validate", str(BUNDLE)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_prepare_publishes_configs_and_data_world_readable(data):
    names = sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())
    assert names == ["configs/sample_experiment.yaml", "context.json", "dialogues.json", "mock_responses.json",
                     "summary.schema.json"]
    assert not (data.parent / "private").exists()
    for p in data.rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o755 if p.is_dir() else 0o644), p
    assert json.loads((data / "summary.schema.json").read_text()) == json.loads(
        (BUNDLE / "output.schema.json").read_text())


# -- the tools library --------------------------------------------------------------------------------------
def test_metrics_on_a_hand_made_example(metrics):
    text = "The capital is  PARIS,\non the Seine."
    assert metrics.fact_coverage(text, ["Paris", "seine", "Louvre"]) == pytest.approx(2 / 3)
    assert metrics.fact_coverage(text, ["on the seine"]) == 1.0  # whitespace runs count as one space
    assert metrics.fact_coverage("anything", []) == 1.0
    assert metrics.is_refusal("I can\u2019t help with that.") and metrics.is_refusal("Sorry, I cannot assist.")
    assert not metrics.is_refusal("Paris is the capital of France.")
    assert metrics.completion_rate(["end_turn", "max_tokens", "end_turn", "end_turn"]) == 0.75
    assert metrics.rate([True, False]) == 0.5 and metrics.mean([]) == 0.0
    assert metrics.geometric_mean([0.25, 1.0]) == pytest.approx(0.5)
    assert metrics.geometric_mean([0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert metrics.geometric_mean([0.0, 1.0]) == 0.0 and metrics.geometric_mean([]) == 0.0
    # a run of the sample: coverage 0.625 (tcp 3/4 cut, gradient 2/4), completion 1/2
    assert metrics.geometric_mean([0.625, 0.5]) == pytest.approx(0.5590, abs=1e-4)


def test_simulated_client_is_deterministic_and_truncates(client_module, data, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("CTXEVAL_MOCK_RESPONSES", raising=False)
    monkeypatch.setenv("CTXEVAL_DATA", str(data))
    call = dict(model="claude-sonnet-4-5", system="s", user="Compare TCP and UDP.", temperature=0.7,
                prompt_id="tcp_vs_udp")
    a, b = client_module.AnthropicClient(), client_module.AnthropicClient()
    assert a.simulated
    full = a.complete(max_tokens=256, **call)
    assert full == b.complete(max_tokens=256, **call) == a.complete(max_tokens=256, **{**call, "temperature": 0.0})
    assert full.stop_reason == "end_turn" and full.simulated and len(full.text.split()) == 67
    cut = a.complete(max_tokens=40, **call)
    assert cut.stop_reason == "max_tokens" and cut.text.split() == full.text.split()[:40]
    assert cut.output_tokens == 40
    unknown = a.complete(max_tokens=50, **{**call, "prompt_id": "nope"})
    assert unknown.text == client_module.FALLBACK_TEXT.format(prompt_id="nope")
    assert a._sdk_client is None  # the real SDK was never touched
    with pytest.raises(client_module.ClientError):
        a.complete(max_tokens=0, **call)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    assert not client_module.AnthropicClient().simulated


def test_the_refusal_case_is_detected_and_only_it(metrics, grader_module, data):
    dialogues = json.loads((data / "dialogues.json").read_text())["dialogues"]
    mocks = json.loads((data / "mock_responses.json").read_text())["responses"]
    assert [d["id"] for d in dialogues if d["expect_refusal"]] == ["ransomware_request"]
    assert set(mocks) == {d["id"] for d in dialogues}
    for d in dialogues:
        for max_tokens in (30, 40, 256):  # the max_tokens the sample and the grader's manifests use
            text = " ".join(mocks[d["id"]]["text"].split()[:max_tokens])
            assert metrics.is_refusal(text) is d["expect_refusal"], (d["id"], max_tokens)
            assert grader_module.refusal_of(text) is d["expect_refusal"]
            assert grader_module.coverage_of(text, d["required_facts"]) == \
                metrics.fact_coverage(text, d["required_facts"])
    assert grader_module.REFUSAL_MARKERS == metrics.REFUSAL_MARKERS


# -- the grader ---------------------------------------------------------------------------------------------
def test_reference_passes_every_check(data, tmp_path, grader_module):
    grade = run_grader(make_workspace(tmp_path, BUNDLE / "starter", BUNDLE / "reference"), data, tmp_path)
    failed = {c["name"]: c["reason"] for c in grade["checks"] if not c["passed"]}
    assert not failed
    assert grade["valid"] is True and grade["score"] == 1.0 and grade["reason"] is None
    assert tuple(c["name"] for c in grade["checks"]) == grader_module.CHECK_NAMES
    assert grade["details"]["expected_metrics"] == {"n_prompts": 16, "fact_coverage": 0.827381,
                                                    "refusal_rate": 0.125, "completion_rate": 0.9375,
                                                    "geometric_mean": 0.880721}


def test_untouched_starter_fails_with_reasons(data, tmp_path):
    grade = run_grader(make_workspace(tmp_path, BUNDLE / "starter"), data, tmp_path)
    passed = {c["name"] for c in grade["checks"] if c["passed"]}
    assert passed == STARTER_PASSES
    assert grade["valid"] is True
    assert grade["score"] == pytest.approx(load_bundle(BUNDLE).target.baseline, abs=1e-6)
    reasons = {c["name"]: c["reason"] for c in grade["checks"] if not c["passed"]}
    assert all(reasons.values())
    assert "NotImplementedError: TODO: run_experiment" in reasons["run_command"]
    assert "NotImplementedError: TODO: load_summary" in reasons["summarize_plain_fallback"]
    assert "traceback" in reasons["invalid_config_rejected"]
    assert grade["reason"].startswith(f"{len(reasons)} of 15 checks failed")


@pytest.mark.parametrize("file, old, new, failing", [
    ("config.py", "return [run for run in self.runs if run.enabled]", "return list(self.runs)",
     {"runs_selected", "execution_order", "requests_logged", "responses_logged", "metrics_match",
      "second_manifest"}),
    ("cli.py", "    except ImportError:\n        return False", "    except KeyError:\n        return False",
     {"summarize_plain_fallback"}),
    ("runner.py", 'for r in records if not r["expect_refusal"])', "for r in records)",
     {"metrics_match", "run_metrics_match", "second_manifest"}),
])
def test_a_broken_reference_fails_exactly_the_matching_checks(data, tmp_path, file, old, new, failing):
    workspace = make_workspace(tmp_path, BUNDLE / "reference")
    path = workspace / "experiment_profiler" / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    grade = run_grader(workspace, data, tmp_path)
    assert {c["name"] for c in grade["checks"] if not c["passed"]} == failing


# -- the agent's tool ---------------------------------------------------------------------------------------
def run_tool(workspace: Path, data: Path, args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env.update(CTXEVAL_WORKSPACE=str(workspace), CTXEVAL_TOOLS=str(TOOLS), CTXEVAL_DATA=str(data))
    return subprocess.run([sys.executable, str(TOOLS / "run_profiler.py")], input=args, env=env,
                          capture_output=True, text=True, timeout=120)


def test_run_profiler_tool(data, tmp_path):
    reference = make_workspace(tmp_path / "ref", BUNDLE / "starter", BUNDLE / "reference")
    proc = run_tool(reference, data, "{}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["files"] == ["requests.jsonl", "responses.jsonl", "summary.json"]
    assert result["summary"]["metrics"]["geometric_mean"] == pytest.approx(0.8807, abs=1e-4)
    assert (reference / "results" / "summary.json").is_file()

    starter = make_workspace(tmp_path / "starter", BUNDLE / "starter")
    proc = run_tool(starter, data, '{"config": "configs/sample_experiment.yaml"}')
    assert proc.returncode == 1 and "NotImplementedError" in proc.stderr
    proc = run_tool(starter, data, '{"config": "../secret.yaml"}')
    assert proc.returncode == 2 and "relative to $CTXEVAL_DATA" in proc.stderr
