"""The `nomad@long` variant's content: the leak column (CV far better with it, the test score far
worse, graded by the real grader), `config.drop_features`, the experiment-log report (only with
NOMAD_OBSERVATION=full; the base tool's output unchanged without it), the threshold against the
starter, the defaults and the reference, one seed of the scripted search, and `ctxeval check`."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import IN_CI, SHARED_DATA
from grader_support import import_grader
from evaluator.bundles import load_bundle
from evaluator.bundles.data import prepare_data
from evaluator.bundles.fetch import fetch_raw
from evaluator.models.search import candidate_configs
from evaluator.models.memory import with_constraints
from evaluator.paths import BUNDLES_DIR, PROJECT_ROOT

BUNDLE = BUNDLES_DIR / "nomad"
TOOLS = BUNDLE / "tools"
NOMAD_RAW = SHARED_DATA / "nomad2018"
LEAK = "lab_bandgap_estimate"
DROP = {"drop_features": [LEAK]}
TARGETS = ("formation_energy_ev_natom", "bandgap_energy_ev")
REPORT_CHARS = (3500, 4500)
TIMING = re.compile(r"\d+\.\d{2,3}(?![\d%])")  # seconds (.2f/.3f); scores are .4f/.5f, shares .1f%
PRIVATE_TEST_MD5 = "fc17cf7adf422874ce65f2b1b1265d98"  # MLE-bench's answers: the variant keeps them
# The base tool's stdout for the default config on the base data, byte for byte, as it was before
# the variant existed (tests/test_nomad.py pins the baseline score; this pins the whole output).
BASE_DEFAULT_STDOUT = (
    '{"cv_mean_rmsle": 0.062393, "cv_rmsle": {"formation_energy_ev_natom": 0.034685, "bandgap_energy_ev": '
    '0.090101}, "cv_std": 0.002177, "cv_bandgap_mae": 0.138651, "config": {"learning_rate": 0.1, "max_iter": '
    '100, "max_depth": null, "max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 0.0, '
    '"log_target": false}, "n_features": 11, "wrote": ["submission.csv", "metrics.json"]}\n'
)


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


grader = import_grader("nomad_long_grade", BUNDLE / "grader" / "grade.py")
_environ = dict(os.environ)
nomadlib = _load("nomad_long_nomadlib", TOOLS / "nomadlib.py")
os.environ.clear()
os.environ.update(_environ)  # nomadlib pins OMP_NUM_THREADS etc.; keep the test session's environment


@pytest.fixture(scope="module")
def raw() -> Path:
    if not (NOMAD_RAW / "train.csv").is_file():
        if IN_CI:
            pytest.fail(f"the NOMAD data folder {NOMAD_RAW} is missing")
        pytest.skip(f"no NOMAD data at {NOMAD_RAW}")
    fetch_raw(load_bundle(BUNDLE), NOMAD_RAW)  # into the cache's raw folder, shared with the variant
    return NOMAD_RAW


@pytest.fixture(scope="module")
def long_bundle():
    return load_bundle(BUNDLES_DIR / "nomad@long")


@pytest.fixture(scope="module")
def long_data(raw, long_bundle):
    return prepare_data(long_bundle)


@pytest.fixture(scope="module")
def base_data(raw):
    return prepare_data(load_bundle(BUNDLE))


def workspace_from(tmp_path: Path, name: str, starter: str = "starter_long") -> Path:
    folder = tmp_path / name
    shutil.copytree(BUNDLE / starter, folder)
    return folder


def run_tool(config: object, data: Path, workspace: Path, full: bool = True,
             tool: str = "train_and_evaluate") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NOMAD_OBSERVATION"}
    env.update(CTXEVAL_DATA=str(data), CTXEVAL_WORKSPACE=str(workspace), CTXEVAL_TOOLS=str(TOOLS),
               **({"NOMAD_OBSERVATION": "full"} if full else {}))
    return subprocess.run([sys.executable, str(TOOLS / f"{tool}.py")], input=json.dumps({"config": config}),
                          capture_output=True, text=True, env=env, cwd=workspace, timeout=300)


def result_of(config: dict, data: Path, workspace: Path, full: bool = True, tool: str = "train_and_evaluate") -> dict:
    proc = run_tool(config, data, workspace, full, tool)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def graded_score(workspace: Path, data) -> float:
    graded = grader.grade(workspace / "submission.csv", data.private / "test.csv")
    assert graded["valid"], graded["reason"]
    return graded["score"]




def starter_config() -> dict:
    return json.loads((BUNDLE / "starter_long" / "config.json").read_text())


# -- the data -----------------------------------------------------------------------------------

def test_the_long_data_adds_the_leak_column_and_keeps_the_answers(long_data, base_data):
    train, test = (pd.read_csv(long_data.public / f) for f in ("train.csv", "test.csv"))
    base_train = pd.read_csv(base_data.public / "train.csv")
    assert list(train.columns) == [*base_train.columns[:12], LEAK, *TARGETS]
    assert list(test.columns) == [*base_train.columns[:12], LEAK]
    pd.testing.assert_frame_equal(train.drop(columns=[LEAK]), base_train)
    assert hashlib.md5((long_data.private / "test.csv").read_bytes()).hexdigest() == PRIVATE_TEST_MD5
    answers = pd.read_csv(long_data.private / "test.csv").set_index("id").loc[test["id"]]
    assert np.corrcoef(train[LEAK], train["bandgap_energy_ev"])[0, 1] > 0.99  # the label, a little noise
    assert abs(np.corrcoef(test[LEAK], answers["bandgap_energy_ev"])[0, 1]) < 0.2  # unrelated noise
    assert set(test[LEAK]) <= set(train[LEAK])  # drawn from train's values: the same marginal
    context = json.loads((long_data.public / "context.json").read_text())
    assert context["columns"][LEAK]["in_test"] is True and "test" in context["columns"][LEAK]
    assert context["files"]["train.csv"].startswith("public training rows: id, 12 features")


# -- the leak, the threshold, the reference -------------------------------------------------------

def test_the_leak_column_inflates_cv_and_fails_on_the_test_set(long_bundle, long_data, tmp_path):
    kept_ws, dropped_ws = workspace_from(tmp_path, "kept"), workspace_from(tmp_path, "dropped")
    kept = result_of(starter_config(), long_data.public, kept_ws, full=False)
    dropped = result_of({**starter_config(), **DROP}, long_data.public, dropped_ws, full=False)
    assert kept["cv_mean_rmsle"] < 0.5 * dropped["cv_mean_rmsle"]  # CV says: keep the column
    assert kept["cv_rmsle"]["bandgap_energy_ev"] < 0.04 < dropped["cv_rmsle"]["bandgap_energy_ev"]
    kept_score, dropped_score = graded_score(kept_ws, long_data), graded_score(dropped_ws, long_data)
    assert kept_score >= 0.2 and kept_score > dropped_score + 0.15  # the test set says the opposite
    assert kept_score == long_bundle.target.baseline
    assert dropped_score == 0.06807  # without the column: exactly the base starter (bundle nomad's baseline)
    assert dropped["n_features"] == 11 and dropped["config"]["drop_features"] == [LEAK]


def test_the_starter_and_the_defaults_stay_above_the_threshold(long_bundle, long_data, tmp_path):
    goal = long_bundle.target.target_score()
    assert long_bundle.target.open_ended and long_bundle.target.success.rule == "threshold"
    scores = {}
    for name, config in (("starter", starter_config()), ("defaults", {}), ("defaults_log", {"log_target": True})):
        workspace = workspace_from(tmp_path, name)
        result_of({**config, **DROP}, long_data.public, workspace, full=False)
        scores[name] = graded_score(workspace, long_data)
    assert min(scores.values()) > goal, scores  # minimize: every one of them fails


def test_the_reference_passes_with_margin(long_bundle, long_data, tmp_path):
    workspace = workspace_from(tmp_path, "ref")
    shutil.copytree(long_bundle.reference_dir, workspace, dirs_exist_ok=True)  # as the oracle does
    config = json.loads((workspace / "config.json").read_text())
    assert config["drop_features"] == [LEAK]
    env = {**os.environ, "CTXEVAL_DATA": str(long_data.public), "CTXEVAL_TOOLS": str(TOOLS)}
    proc = subprocess.run([sys.executable, "train.py"], cwd=workspace, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "report" not in json.loads(proc.stdout)
    assert graded_score(workspace, long_data) <= long_bundle.target.target_score() - 0.0015


@pytest.mark.slow
def test_the_scripted_search_reaches_the_threshold_for_seed_3(long_bundle, long_data):
    """The order the offline controller tries once the constraint is seen (README: seed 3 reaches the
    threshold at its 12th candidate), run in process; scored by the best CV so far, as submitted."""
    schema = long_bundle.controller.proposal_schema["properties"]["config"]
    candidates = [with_constraints(c, DROP) for c in candidate_configs(schema, 3)[:12]]
    train = pd.read_csv(long_data.public / "train.csv")
    test = pd.read_csv(long_data.public / "test.csv")
    answers = pd.read_csv(long_data.private / "test.csv").set_index("id").loc[test["id"]]
    x, x_new = (f.drop(columns=["id", LEAK, *TARGETS], errors="ignore").to_numpy(float) for f in (train, test))
    targets = {t: train[t].to_numpy(float) for t in TARGETS}
    tried = []
    for config in candidates:
        resolved = nomadlib.validate_config(config)
        scores, predictions = nomadlib.fit_all(resolved, x, x_new, targets, evaluate=True)
        test_rmsle = np.mean([nomadlib.rmsle(answers[t].to_numpy(float), predictions[t]) for t in TARGETS])
        tried.append((scores["cv_mean_rmsle"], round(float(test_rmsle), 5)))
    goal = long_bundle.target.target_score()
    best_of = [min(tried[:n])[1] for n in range(1, len(tried) + 1)]  # test score of the best CV so far
    assert best_of[1] > goal >= best_of[-1], tried  # the defaults do not reach it, the 12th best does


# -- drop_features --------------------------------------------------------------------------------

@pytest.mark.parametrize("drop, message", [
    ([LEAK, "band_gap"], "unknown feature column(s) band_gap; the model's input columns (as features.py "
                         "returns them) are: spacegroup, number_of_total_atoms"),
    (["spacegroup", "spacegroup"], "names spacegroup more than once"),
    (LEAK, "must be an array of feature column names"),
    ([LEAK, ""], "must be an array of feature column names"),
])
def test_bad_drop_features_are_rejected_with_a_clear_error(long_data, tmp_path, drop, message):
    workspace = workspace_from(tmp_path, "ws")
    proc = run_tool({"drop_features": drop}, long_data.public, workspace)
    assert proc.returncode == 2 and message in proc.stderr and proc.stdout == "", proc.stderr
    assert not (workspace / "submission.csv").exists() and not (workspace / "metrics.json").exists()


def test_dropping_every_column_is_rejected(long_data, tmp_path):
    workspace = workspace_from(tmp_path, "ws")
    columns = list(pd.read_csv(long_data.public / "test.csv", nrows=1).columns[1:])
    proc = run_tool({"drop_features": columns}, long_data.public, workspace, tool="predict")
    assert proc.returncode == 2 and "leaves no feature to train on" in proc.stderr


def test_dropped_columns_are_left_out_and_recorded(long_data, tmp_path):
    workspace = workspace_from(tmp_path, "ws")
    config = {"max_iter": 40, "drop_features": [LEAK, "percent_atom_in", "percent_atom_al"]}
    result = result_of(config, long_data.public, workspace)
    metrics = json.loads((workspace / "metrics.json").read_text())
    assert result["n_features"] == metrics["n_features"] == 9
    assert not {LEAK, "percent_atom_in", "percent_atom_al"} & set(metrics["features"])
    assert metrics["config"]["drop_features"] == config["drop_features"]
    report = result["report"]
    assert "dropped features: lab_bandgap_estimate, percent_atom_in, percent_atom_al -> 9 features used" in report
    importances = report.split("feature importances")[1].split("learning curve")[0]
    assert "top 8 of 9" in importances and not re.search(r"percent_atom_(in|al)|lab_bandgap", importances)
    predicted = result_of(config, long_data.public, workspace_from(tmp_path, "p"), tool="predict")
    assert predicted["config"] == result["config"] and "report" not in predicted


def test_the_variant_declares_drop_features_and_the_base_does_not(long_bundle):
    base = load_bundle(BUNDLE)
    for bundle, declared in ((long_bundle, True), (base, False)):
        schemas = [t.parameters["properties"]["config"] for t in bundle.tools]
        schemas.append(bundle.controller.proposal_schema["properties"]["config"])
        for schema in schemas:
            assert ("drop_features" in schema["properties"]) is declared
            assert set(schema["properties"]) - {"drop_features"} == set(nomadlib.PARAMS)
    train_tool = long_bundle.tool("train_and_evaluate")
    assert train_tool.command.startswith("NOMAD_OBSERVATION=full ")
    assert "NOMAD_OBSERVATION" not in base.tool("train_and_evaluate").command
    assert long_bundle.limits.max_steps >= 45 and long_bundle.limits.wall_seconds >= 1800
    leak = next(p for p in long_bundle.probes if p.id == "leak_column")
    assert leak.decisive and leak.constraint == DROP and leak.answer_text == LEAK
    others = [p for p in long_bundle.probes if p.id != "leak_column"]
    assert len(others) == 4 and not any(p.decisive for p in others)
    assert len({p.plant_after_call for p in long_bundle.probes}) == 5
    assert all("\n" not in p.fact and min(p.ask_before_calls) > p.plant_after_call for p in long_bundle.probes)


# -- the report -----------------------------------------------------------------------------------

@pytest.mark.parametrize("config, reference_features", [
    (starter_config(), False),
    (DROP, False),
    ({"learning_rate": 0.03, "max_iter": 200, "max_depth": 3, "log_target": True}, True),
])
def test_the_report_is_an_experiment_log_of_the_intended_size(long_data, tmp_path, config, reference_features):
    workspace = workspace_from(tmp_path, "ws")
    if reference_features:  # 32 engineered columns (no lab_bandgap_estimate: nothing to drop)
        shutil.copy(BUNDLE / "reference" / "features.py", workspace / "features.py")
    result = result_of(config, long_data.public, workspace)
    report = result["report"]
    assert REPORT_CHARS[0] <= len(report) <= REPORT_CHARS[1], len(report)
    for part in ("5-fold cross-validation", "fit_s f/b", "largest out-of-fold band gap errors", "final fit on all",
                 "training RMSLE (resubstitution)", "feature importances: split gain", "learning curve",
                 "warnings:"):
        assert part in report, part
    assert f"mean RMSLE {result['cv_mean_rmsle']:.5f} +/- {result['cv_std']:.5f}" in report
    folds = [line for line in report.splitlines() if re.match(r"\s+[1-5]\s+1728\s+432\s", line)]
    assert len(folds) == 5
    curve = report.split("learning curve")[1].split("warnings:")[0].splitlines()
    assert [int(line.split()[0]) for line in curve if re.match(r"\s+\d+\s", line)] == [432, 864, 1728]
    if "drop_features" not in config and not reference_features:  # the leak dominates the band gap model
        assert re.search(r"\n   1  \S+ .*\| lab_bandgap_estimate\s+9\d\.\d%", report)


def test_the_report_is_deterministic_except_timings(long_data, tmp_path):
    config = {"max_iter": 60, "log_target": True, **DROP}
    first, second = (result_of(config, long_data.public, workspace_from(tmp_path, n))["report"] for n in "ab")
    assert TIMING.sub("T", first) == TIMING.sub("T", second)


def test_warnings_of_features_py_are_captured_into_the_report(long_data, tmp_path):
    workspace = workspace_from(tmp_path, "ws")
    (workspace / "features.py").write_text(
        "import numpy as np\n\ndef make_features(df):\n"
        "    return df.assign(odd=np.sqrt(df['percent_atom_ga'] - 0.5))\n")
    proc = run_tool({"max_iter": 30, **DROP}, long_data.public, workspace)
    assert proc.returncode == 0 and "RuntimeWarning" not in proc.stderr
    report = json.loads(proc.stdout)["report"]
    assert "warnings: 2\n  RuntimeWarning: invalid value encountered in sqrt (x2)" in report  # train and test
    quiet = run_tool({"max_iter": 30, **DROP}, long_data.public, workspace, full=False)
    assert quiet.returncode == 0 and "RuntimeWarning" in quiet.stderr  # without the log: as before


def test_no_report_without_the_observation_setting(long_data, base_data, tmp_path):
    keys = {"cv_mean_rmsle", "cv_rmsle", "cv_std", "cv_bandgap_mae", "config", "n_features", "wrote"}
    long = result_of(DROP, long_data.public, workspace_from(tmp_path, "long"), full=False)
    assert set(long) == keys
    base_ws = workspace_from(tmp_path, "base", starter="starter")
    proc = run_tool({}, base_data.public, base_ws, full=False)
    assert proc.returncode == 0 and proc.stdout == BASE_DEFAULT_STDOUT  # byte for byte as before
    assert set(result_of({}, base_data.public, workspace_from(tmp_path, "full", starter="starter"))) == \
        keys | {"report"}


def test_validate_lists_the_variant():
    proc = subprocess.run([sys.executable, "-m", "evaluator", "validate", "bundles/nomad"], capture_output=True,
                          text=True, cwd=PROJECT_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "variants: long" in proc.stdout and "ok  nomad@long" in proc.stdout


# -- the whole variant in Docker ------------------------------------------------------------------

@pytest.mark.docker
@pytest.mark.slow
def test_check_passes_on_the_long_variant(raw, tmp_path):
    env = {**os.environ, "CTXEVAL_RUNS_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "evaluator", "check", "bundles/nomad@long", "--backend", "docker",
                           "--runs-dir", str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=PROJECT_ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "PASS oracle passes" in proc.stderr and "PASS noop fails" in proc.stderr
    assert "(variant long)" in proc.stderr and "image ctxeval/bundle-nomad:" in proc.stderr
    assert "bundle nomad@long is sound" in proc.stdout
    results = {r["episode_id"]: r for r in (json.loads(p.read_text()) for p in tmp_path.rglob("result.json"))}
    assert sorted(results) == ["nomad@long-noop-s0", "nomad@long-oracle-s0"]
    oracle = results["nomad@long-oracle-s0"]
    assert oracle["bundle"]["id"] == "nomad@long" and oracle["success"] is True and oracle["score"] <= 0.0605
