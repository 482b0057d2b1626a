"""The `toy@long` variant's content: the leak column (CV high with it, test accuracy low, graded by
the real grader), `config.drop_features`, the experiment-log report (only with
TOY_OBSERVATION=full), the threshold against the families' defaults, and `ctxeval check`."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from grader_support import GRADING_ENV

from evaluator.bundles import load_bundle
from evaluator.bundles.data import prepare_data
from evaluator.paths import BUNDLES_DIR, PROJECT_ROOT

TOOL = BUNDLES_DIR / "toy" / "tools" / "train_and_evaluate.py"
GRADER = BUNDLES_DIR / "toy" / "grader" / "grade.py"
FAMILIES = ("logistic_regression", "decision_tree", "random_forest", "gradient_boosting",
            "hist_gradient_boosting", "knn")
REPORT_CHARS = (3500, 4500)
TIMING = re.compile(r"\d+\.\d{2,3}(?![\d%])")  # seconds (.2f/.3f); scores are .4f, shares .1f%


@pytest.fixture(scope="module")
def long_bundle():
    return load_bundle(BUNDLES_DIR / "toy@long")


@pytest.fixture(scope="module")
def long_data(long_bundle):
    return prepare_data(long_bundle)


def run_tool(config: dict, data: Path, workspace: Path, full: bool = True) -> subprocess.CompletedProcess:
    workspace.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "TOY_OBSERVATION"}
    env.update(CTXEVAL_DATA=str(data), CTXEVAL_WORKSPACE=str(workspace), **({"TOY_OBSERVATION": "full"} if full else {}))
    return subprocess.run([sys.executable, str(TOOL)], input=json.dumps({"config": config}), capture_output=True,
                          text=True, env=env, timeout=300)


def result_of(config: dict, data: Path, workspace: Path, full: bool = True) -> dict:
    proc = run_tool(config, data, workspace, full)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def grade(workspace: Path, private: Path, tmp_path: Path) -> float:
    out = tmp_path / f"grade-{workspace.name}"
    out.mkdir()
    env = {**os.environ, **GRADING_ENV, "CTXEVAL_WORKSPACE": str(workspace), "CTXEVAL_PRIVATE": str(private),
           "CTXEVAL_OUTPUT": str(out)}
    proc = subprocess.run([sys.executable, str(GRADER)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    graded = json.loads((out / "grade.json").read_text())
    assert graded["valid"], graded["reason"]
    return graded["score"]


def starter_config() -> dict:
    return json.loads((BUNDLES_DIR / "toy" / "starter" / "config.json").read_text())


# -- the leak -----------------------------------------------------------------------------------

def test_the_leak_column_inflates_cv_and_fails_on_the_test_set(long_bundle, long_data, tmp_path):
    goal = long_bundle.target.target_score()
    kept = result_of(starter_config(), long_data.public, tmp_path / "kept")
    assert kept["cv_accuracy"] >= 0.97
    kept_score = grade(tmp_path / "kept", long_data.private, tmp_path)
    assert kept_score <= 0.65 and goal - kept_score >= 0.2
    dropped = result_of({**starter_config(), "drop_features": ["f23"]}, long_data.public, tmp_path / "dropped")
    assert dropped["cv_accuracy"] < 0.9 and dropped["config"]["drop_features"] == ["f23"]
    assert grade(tmp_path / "dropped", long_data.private, tmp_path) > kept_score + 0.15


def test_the_families_at_their_defaults_stay_below_the_threshold(long_bundle, long_data, tmp_path):
    goal = long_bundle.target.target_score()
    scores = {}
    for family in FAMILIES:
        result_of({"model": family, "drop_features": ["f23"]}, long_data.public, tmp_path / family, full=False)
        scores[family] = grade(tmp_path / family, long_data.private, tmp_path)
    assert max(scores.values()) < goal, scores


def test_the_reference_passes_with_margin(long_bundle, long_data, tmp_path):
    config = json.loads((long_bundle.reference_dir / "config.json").read_text())
    assert "f23" in config["drop_features"]
    result_of(config, long_data.public, tmp_path / "ref", full=False)
    assert grade(tmp_path / "ref", long_data.private, tmp_path) >= long_bundle.target.target_score() + 0.008


# -- drop_features ------------------------------------------------------------------------------

def test_dropped_features_are_left_out_of_training(long_data, tmp_path):
    config = {"model": "random_forest", "n_estimators": 20, "drop_features": ["f23"]}
    full = result_of(config, long_data.public, tmp_path / "a")
    ranked = re.findall(r"^\s+\d+\s+(f\d+)\s", full["report"].split("feature importances")[1], re.MULTILINE)
    strongest = ranked[:3]  # the full run's own ranking
    fewer = result_of({**config, "drop_features": ["f23", *strongest]}, long_data.public, tmp_path / "b")
    assert fewer["cv_accuracy"] < full["cv_accuracy"] - 0.02  # the strongest columns are gone
    assert f"dropped features: {', '.join(['f23', *strongest])} -> 28 features used" in fewer["report"]
    importances = fewer["report"].split("feature importances")[1].split("learning curve")[0]
    assert "top 20 of 28" in importances
    assert not any(re.search(rf"\b{name}\b", importances) for name in ["f23", *strongest])
    assert all(re.search(rf"\b{name}\b", full["report"].split("feature importances")[1]) for name in strongest)
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["config"]["drop_features"] == ["f23", *strongest]


@pytest.mark.parametrize("drop, message", [
    (["f23", "f99"], "unknown feature column(s) f99; the columns are f0..f31"),
    (["f1", "f1"], "names f1 more than once"),
    ("f23", "must be an array of feature names"),
    ([f"f{j}" for j in range(32)], "leaves no feature to train on"),
])
def test_bad_drop_features_are_rejected_with_a_clear_error(long_data, tmp_path, drop, message):
    proc = run_tool({"model": "knn", "drop_features": drop}, long_data.public, tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "predictions.csv").exists()


# -- the report ---------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [
    {"model": "logistic_regression", "C": 0.01},
    {"model": "hist_gradient_boosting", "drop_features": ["f23"]},
    {"model": "random_forest", "n_estimators": 50, "max_features": None, "drop_features": ["f23"]},
    {"model": "knn", "n_neighbors": 150, "drop_features": ["f23"]},
])
def test_the_report_is_an_experiment_log_of_the_intended_size(long_data, tmp_path, config):
    result = result_of(config, long_data.public, tmp_path)
    report = result["report"]
    assert REPORT_CHARS[0] <= len(report) <= REPORT_CHARS[1], len(report)
    for part in ("5-fold stratified cross-validation", "fit_s", "mean accuracy", "classification report",
                 "feature importances, top 20", "learning curve", "warnings:"):
        assert part in report
    assert f"mean accuracy {result['cv_accuracy']:.4f} +/- {result['cv_std']:.4f}" in report
    curve = report.split("learning curve")[1].split("warnings:")[0].splitlines()
    assert len([line for line in curve if re.match(r"\s+\d+\s", line)]) == 3  # one row per train size


def test_the_report_is_deterministic_except_timings(long_data, tmp_path):
    config = {"model": "hist_gradient_boosting", "max_iter": 60, "drop_features": ["f23"]}
    first, second = (result_of(config, long_data.public, tmp_path / n)["report"] for n in "ab")
    assert TIMING.sub("T", first) == TIMING.sub("T", second)
    assert "permutation" in first  # no importances of its own: permutation importance


def test_warnings_are_captured_into_the_report(long_data, tmp_path):
    proc = run_tool({"model": "logistic_regression", "max_iter": 10}, long_data.public, tmp_path)
    assert proc.returncode == 0 and "ConvergenceWarning" not in proc.stderr
    found = re.search(r"warnings: (\d+)\n  ConvergenceWarning: lbfgs failed to converge.* \(x(\d+)\)\n",
                      json.loads(proc.stdout)["report"])
    assert found and found.group(1) == found.group(2) and int(found.group(1)) >= 6  # 5 folds + the final fit


def test_no_report_without_the_observation_setting(long_data, toy_data, tmp_path):
    long = result_of({"model": "knn"}, long_data.public, tmp_path / "long", full=False)
    base = result_of({"model": "knn"}, toy_data.public, tmp_path / "base", full=False)
    for result in (long, base):
        assert set(result) == {"cv_accuracy", "cv_std", "config", "wrote"}
        assert "drop_features" not in result["config"]
    assert set(result_of({"model": "knn"}, toy_data.public, tmp_path / "full")) == \
        {"cv_accuracy", "cv_std", "config", "wrote", "report"}


# -- the whole variant in Docker ----------------------------------------------------------------

@pytest.mark.docker
@pytest.mark.slow
def test_check_passes_on_the_long_variant(tmp_path):
    env = {**os.environ, "CTXEVAL_RUNS_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "evaluator", "check", "bundles/toy@long", "--backend", "docker",
                           "--runs-dir", str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=PROJECT_ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "PASS oracle passes" in proc.stderr and "PASS noop fails" in proc.stderr
    assert "(variant long)" in proc.stderr and "image ctxeval/bundle-toy:" in proc.stderr
    assert "bundle toy@long is sound" in proc.stdout
    results = [json.loads(p.read_text()) for p in tmp_path.rglob("result.json")]
    assert sorted(r["episode_id"] for r in results) == ["toy@long-noop-s0", "toy@long-oracle-s0"]
    assert all(r["bundle"]["id"] == "toy@long" for r in results)
