"""The experiment_profiler bundle on the host, without Docker: manifest, data stage, tools, grader.

The grader is run through the evaluator's real path on the local backend: its plan in the grading
sandbox, the planned commands in a separate submission sandbox (no grader, no private data, no
grader output folder), then its check on their results. The reference must pass every check, the
untouched starter must fail all but the two it is given, with reasons; a submission that looks for
the grader's files while it runs finds none of them.
"""
from __future__ import annotations

import importlib
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
import yaml
from grader_support import GRADING_ENV

from evaluator.bundles import load_bundle
from evaluator.bundles.data import prepare_data
from evaluator.bundles.grading_helper import GRADING_LIB_DIR
from evaluator.episode.grading import GradeOutcome, grade_artefacts
from evaluator.jsonschemas import project_schema, violations
from evaluator.paths import BUNDLES_DIR

BUNDLE = BUNDLES_DIR / "experiment_profiler"
TOOLS = BUNDLE / "tools"
GRADER = BUNDLE / "grader"
STARTER_PASSES = {"package_imports", "cli_commands"}
LABELS = {"ctxeval.run": "pytest"}


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
def bundle():
    return load_bundle(BUNDLE)


@pytest.fixture(scope="module")
def prepared(bundle):
    return prepare_data(bundle)


@pytest.fixture(scope="module")
def metrics() -> ModuleType:
    return load_module(TOOLS / "metrics.py", "ep_tools_metrics")


@pytest.fixture(scope="module")
def client_module() -> ModuleType:
    return load_module(TOOLS / "anthropic_client.py", "ep_tools_anthropic_client")


@pytest.fixture(scope="module")
def grader_package():
    """The grader's modules (the package profiler_grader beside grade.py), imported as grade.py does."""
    sys.path[:0] = [str(GRADING_LIB_DIR), str(GRADER)]
    try:
        yield {name: importlib.import_module(f"profiler_grader.{name}")
               for name in ("common", "expectations", "plan", "check")}
    finally:
        sys.path.remove(str(GRADER))
        sys.path.remove(str(GRADING_LIB_DIR))


def make_workspace(root: Path, *layers: Path) -> Path:
    """Copy the layers over each other (as the oracle copies reference/ over starter/)."""
    workspace = root / "workspace"
    for layer in layers:
        shutil.copytree(layer, workspace, dirs_exist_ok=True)
    return workspace


def grade(bundle, prepared, workspace: Path) -> GradeOutcome:
    """Grade a workspace as an episode's artefacts are graded (local backend: no Docker)."""
    outcome = grade_artefacts(bundle, "local", None, workspace, prepared, LABELS)
    assert not outcome.errors, (outcome.errors, outcome.log)
    assert not violations(outcome.grade, project_schema("grade"), "grade.json")
    return outcome


def reasons_of(outcome: GradeOutcome) -> dict[str, str]:
    return {c["name"]: c["reason"] for c in outcome.grade["checks"] if not c["passed"]}


def grader_env(**paths: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTXEVAL_", "ANTHROPIC_"))}
    env.update({**GRADING_ENV, **{f"CTXEVAL_{k.upper()}": str(v) for k, v in paths.items()}})
    return env


def run_grade_py(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GRADER / "grade.py"), *args], env=env, capture_output=True,
                          text=True, timeout=120)


# -- manifest and data stage -------------------------------------------------------------------------------
def test_bundle_loads_as_an_agentic_all_checks_task():
    bundle = load_bundle(BUNDLE)
    assert bundle.id == "experiment_profiler"
    assert bundle.controller is None
    assert bundle.target.metric == "checks_passed" and bundle.target.success.rule == "all_checks"
    assert [t.name for t in bundle.tools] == ["run_profiler"]
    assert bundle.output_path == bundle.grader_submission == "results/summary.json"
    assert bundle.data is not None and bundle.data.private is None
    assert bundle.grader_run is not None and bundle.grader_run.plan.endswith('grade.py" plan')  # runs apart


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


def test_the_refusal_case_is_detected_and_only_it(metrics, grader_package, data):
    expectations = grader_package["expectations"]
    dialogues = json.loads((data / "dialogues.json").read_text())["dialogues"]
    mocks = json.loads((data / "mock_responses.json").read_text())["responses"]
    assert [d["id"] for d in dialogues if d["expect_refusal"]] == ["ransomware_request"]
    assert set(mocks) == {d["id"] for d in dialogues}
    for d in dialogues:
        for max_tokens in (30, 40, 256):  # the max_tokens the sample and the grader's manifests use
            text = " ".join(mocks[d["id"]]["text"].split()[:max_tokens])
            assert metrics.is_refusal(text) is d["expect_refusal"], (d["id"], max_tokens)
            assert expectations.refusal_of(text) is d["expect_refusal"]
            assert expectations.coverage_of(text, d["required_facts"]) == \
                metrics.fact_coverage(text, d["required_facts"])
    assert expectations.REFUSAL_MARKERS == metrics.REFUSAL_MARKERS


# -- the grader's plan --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planned(tmp_path_factory, data) -> Path:
    """$CTXEVAL_OUTPUT after `grade.py plan`, run as in the grading sandbox."""
    output = tmp_path_factory.mktemp("ep_plan")
    proc = run_grade_py("plan", env=grader_env(output=output, data=data, grader=GRADER, tools=TOOLS))
    assert proc.returncode == 0, proc.stderr
    return output


def test_the_plan_is_valid_and_names_no_path_of_its_own(planned, data, grader_package):
    plan = json.loads((planned / "plan.json").read_text())
    assert not violations(plan, project_schema("grader_plan"), "plan.json")
    assert tuple(c["name"] for c in plan["commands"]) == grader_package["common"].COMMAND_NAMES
    text = json.dumps(plan)
    for host_path in (str(data), str(planned), str(GRADER), str(TOOLS)):  # run-stage paths come from its env
        assert host_path not in text
    for command in plan["commands"]:
        assert command["timeout_seconds"] == 30 and "unset ${!ANTHROPIC_@}" in command["command"]
    inputs = sorted(p.relative_to(planned / "inputs").as_posix() for p in (planned / "inputs").rglob("*")
                    if p.is_file())
    assert inputs == ["block_rich.py", "manifests/invalid_config.yaml", "manifests/second_manifest.yaml",
                      "richstub/rich/__init__.py", "richstub/rich/box.py", "richstub/rich/console.py",
                      "richstub/rich/table.py", "richstub/rich/text.py", "summarize/summary.json"]
    summary = json.loads((planned / "inputs" / "summarize" / "summary.json").read_text())
    assert summary["metrics"]["geometric_mean"] == pytest.approx(0.880721, abs=1e-6)


def test_a_planned_manifest_gets_the_run_stage_dataset_whatever_its_path(planned, grader_package, tmp_path):
    """The manifest a command runs names $CTXEVAL_DATA of the sandbox it runs in (a quote in the
    path included), not the path the plan saw."""
    common, plan = grader_package["common"], grader_package["plan"]
    odd_data = tmp_path / "it's data"
    env = {"PATH": os.environ["PATH"], "CTXEVAL_RUN_INPUTS": str(planned / "inputs"),
           "CTXEVAL_RUN_OUTPUT": str(tmp_path / "out"), "CTXEVAL_DATA": str(odd_data)}
    proc = subprocess.run(["bash", "-c", plan.fill_manifest(common.SECOND_MANIFEST)], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    written = yaml.safe_load((tmp_path / "out" / common.SECOND_MANIFEST / common.MANIFEST_FILE).read_text())
    assert written == common.with_dataset(common.VARIANT_MANIFEST, odd_data)
    assert written["dataset"] == f"{odd_data}/dialogues.json"


def test_the_check_cannot_grade_without_run_results(data, tmp_path):
    env = grader_env(output=tmp_path, data=data, grader=GRADER, tools=TOOLS, workspace=tmp_path)
    proc = run_grade_py(env=env)
    assert proc.returncode == 1 and "CTXEVAL_RUN_RESULTS is not set" in proc.stderr
    results = tmp_path / "results"
    results.mkdir()
    (results / "results.json").write_text(json.dumps({"schema_version": 1, "commands": [], "output": {}}))
    proc = run_grade_py(env={**env, "CTXEVAL_RUN_RESULTS": str(results)})
    assert proc.returncode == 1 and "no result for the planned command(s) package_imports" in proc.stderr
    assert not (tmp_path / "grade.json").exists()


# -- the grader, through the evaluator ----------------------------------------------------------------------
def test_reference_passes_every_check(bundle, prepared, tmp_path, grader_package):
    outcome = grade(bundle, prepared, make_workspace(tmp_path, BUNDLE / "starter", BUNDLE / "reference"))
    grade_json = outcome.grade
    assert not reasons_of(outcome)
    assert grade_json["valid"] is True and grade_json["score"] == 1.0 and grade_json["reason"] is None
    assert tuple(c["name"] for c in grade_json["checks"]) == grader_package["check"].CHECK_NAMES
    assert grade_json["details"]["expected_metrics"] == {"n_prompts": 16, "fact_coverage": 0.827381,
                                                         "refusal_rate": 0.125, "completion_rate": 0.9375,
                                                         "geometric_mean": 0.880721}
    ran = {c["name"]: c["outcome"] for c in outcome.log["run"]["commands"]}
    assert ran == grade_json["details"]["commands"]
    assert ran.pop("invalid_config") == "nonzero_exit" and set(ran.values()) == {"ok"}


def test_untouched_starter_fails_with_reasons(bundle, prepared, tmp_path):
    outcome = grade(bundle, prepared, make_workspace(tmp_path, BUNDLE / "starter"))
    grade_json = outcome.grade
    passed = {c["name"] for c in grade_json["checks"] if c["passed"]}
    assert passed == STARTER_PASSES
    assert grade_json["valid"] is True
    assert grade_json["score"] == pytest.approx(bundle.target.baseline, abs=1e-6)
    reasons = reasons_of(outcome)
    assert all(reasons.values())
    assert "NotImplementedError: TODO: run_experiment" in reasons["run_command"]
    assert "NotImplementedError: TODO: load_summary" in reasons["summarize_plain_fallback"]
    assert "traceback" in reasons["invalid_config_rejected"]
    assert grade_json["reason"].startswith(f"{len(reasons)} of 15 checks failed")


@pytest.mark.parametrize("file, old, new, failing", [
    ("config.py", "return [run for run in self.runs if run.enabled]", "return list(self.runs)",
     {"runs_selected", "execution_order", "requests_logged", "responses_logged", "metrics_match",
      "second_manifest"}),
    ("cli.py", "    except ImportError:\n        return False", "    except KeyError:\n        return False",
     {"summarize_plain_fallback"}),
    ("runner.py", 'for r in records if not r["expect_refusal"])', "for r in records)",
     {"metrics_match", "run_metrics_match", "second_manifest"}),
])
def test_a_broken_reference_fails_exactly_the_matching_checks(bundle, prepared, tmp_path, file, old, new,
                                                              failing):
    workspace = make_workspace(tmp_path, BUNDLE / "reference")
    path = workspace / "experiment_profiler" / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    assert set(reasons_of(grade(bundle, prepared, workspace))) == failing


def test_a_flooding_help_fails_cli_commands_with_the_cap(bundle, prepared, tmp_path):
    workspace = make_workspace(tmp_path, BUNDLE / "reference")
    cli = workspace / "experiment_profiler" / "cli.py"
    cli.write_text(cli.read_text().replace("def main(argv: list[str] | None = None) -> int:\n",
                                           "def main(argv: list[str] | None = None) -> int:\n"
                                           "    if '--help' in (argv or sys.argv):\n"
                                           "        print('x' * 300_000)\n", 1))
    outcome = grade(bundle, prepared, workspace)
    assert set(reasons_of(outcome)) == {"cli_commands"}
    assert "printed more than 200000 bytes" in reasons_of(outcome)["cli_commands"]
    assert outcome.grade["details"]["commands"]["cli_help"] == "output_capped"


# -- the submission runs apart from the grader -----------------------------------------------------------------
# Appended to the reference's experiment_profiler/__init__.py: on import, look for the grader's files,
# the private data and the grader's output folder, try to forge grade.json there, and fail the import
# with what was found, so every command's result (and the check's reason) shows it.
PROBE = r"""
def _probe() -> str:
    import json as _json
    env = os.environ
    seen = {name: ("set" if env.get(name) else "unset")
            for name in ("CTXEVAL_GRADER", "CTXEVAL_PRIVATE", "CTXEVAL_OUTPUT", "CTXEVAL_RUN_RESULTS",
                         "CTXEVAL_RUN_INPUTS", "CTXEVAL_RUN_OUTPUT", "CTXEVAL_WORKSPACE")}
    grader = os.path.join(env.get("CTXEVAL_GRADER") or "/grader", "grade.py")
    try:
        with open(grader) as handle:
            seen["grade.py"] = "read:%d" % len(handle.read())
    except OSError:
        seen["grade.py"] = "absent"
    seen["/grader"] = "present" if os.path.exists("/grader") else "absent"
    try:
        seen["private"] = "listed:%d" % len(os.listdir(env.get("CTXEVAL_PRIVATE") or "/private"))
    except OSError:
        seen["private"] = "absent"
    forged = {"schema_version": 1, "valid": True, "score": 1.0, "metric": "checks_passed", "reason": "forged"}
    try:
        with open(os.path.join(env.get("CTXEVAL_OUTPUT") or "/output", "grade.json"), "w") as handle:
            handle.write(_json.dumps(forged))
        seen["grade.json"] = "forged"
    except OSError:
        seen["grade.json"] = "unwritable"
    return " ".join(f"{k}={v}" for k, v in seen.items())


raise RuntimeError("probe " + _probe())
"""
PROBE_FINDS = ("probe CTXEVAL_GRADER=unset CTXEVAL_PRIVATE=unset CTXEVAL_OUTPUT=unset CTXEVAL_RUN_RESULTS=unset "
               "CTXEVAL_RUN_INPUTS=set CTXEVAL_RUN_OUTPUT=set CTXEVAL_WORKSPACE=set grade.py=absent "
               "/grader=absent private=absent grade.json=unwritable")


def test_a_submission_run_for_grading_finds_none_of_the_graders_files(bundle, prepared, tmp_path):
    workspace = make_workspace(tmp_path, BUNDLE / "reference")
    init = workspace / "experiment_profiler" / "__init__.py"
    init.write_text(init.read_text() + PROBE)
    outcome = grade(bundle, prepared, workspace)
    # every command imported the probe, in the run stage, and it found nothing of the grader's
    commands = outcome.log["run"]["commands"]
    assert len(commands) == 9 and all(c["exit_code"] == 1 for c in commands), commands
    reasons = reasons_of(outcome)
    assert PROBE_FINDS in reasons["package_imports"], reasons["package_imports"]
    assert PROBE_FINDS in reasons["run_command"] and PROBE_FINDS in reasons["summarize_uses_rich"]
    # and the grade is the check's own, not the forged one
    assert outcome.grade["valid"] is True and outcome.grade["score"] == 0.0 and len(reasons) == 15
    assert "forged" not in json.dumps(outcome.grade)


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
