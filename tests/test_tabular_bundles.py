"""The scikit-learn bundles (digits, diabetes, breast_cancer) and the bundle library they share
(evaluator/bundle_lib/ctxeval_tabular): bundle.yaml in sync with the library's schema, the data
stage's split and leak, the tool, the grader against an independent computation of its metric,
the baseline and reference scores the README and bundle.yaml state, and the scripted search
reaching the target through the bundle's own proposal schema (local backend; `ctxeval check` in
Docker is in test_tabular_bundles_docker.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from grader_support import GRADING_ENV
from sklearn import metrics

from evaluator.bundles import load_bundle
from evaluator.bundles.bundle_lib import BUNDLE_LIB_DIR, BUNDLE_LIB_ENV, bundle_hash
from evaluator.bundles.data import prepare_data
from evaluator.hashing import hash_tree
from evaluator.paths import BUNDLES_DIR

sys.path.insert(0, str(BUNDLE_LIB_DIR))
from ctxeval_tabular.schema import config_schema  # noqa: E402
from ctxeval_tabular.task import load_task  # noqa: E402

BUNDLES = ("digits", "diabetes", "breast_cancer")
LEAKS = {"digits": "form_id", "diabetes": "hba1c_followup", "breast_cancer": "biopsy_ordered"}
ROWS = {"digits": (1198, 599), "diabetes": (309, 133), "breast_cancer": (271, 146)}
LIB_ENV = {BUNDLE_LIB_ENV: str(BUNDLE_LIB_DIR), "PYTHONDONTWRITEBYTECODE": "1"}
INDEPENDENT_METRIC = {"accuracy": metrics.accuracy_score, "balanced_accuracy": metrics.balanced_accuracy_score,
                      "rmse": lambda t, p: float(np.sqrt(np.mean((np.asarray(t) - np.asarray(p)) ** 2)))}


@pytest.fixture(scope="module", params=BUNDLES)
def name(request):
    return request.param


@pytest.fixture(scope="module")
def bundle(name):
    return load_bundle(BUNDLES_DIR / name)


@pytest.fixture(scope="module")
def long_bundle(name):
    return load_bundle(BUNDLES_DIR / f"{name}@long")


@pytest.fixture(scope="module")
def data(bundle):
    return prepare_data(bundle)


@pytest.fixture(scope="module")
def long_data(long_bundle):
    return prepare_data(long_bundle)


def run_tool(bundle, data_dir: Path, workspace: Path, arguments, full: bool = False) -> subprocess.CompletedProcess:
    """The bundle's tool as its command runs it: `python3 -P -m ctxeval_tabular.tool TOOLS`."""
    workspace.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "TABULAR_OBSERVATION"}
    env.update(LIB_ENV, PYTHONPATH=str(BUNDLE_LIB_DIR), CTXEVAL_DATA=str(data_dir), CTXEVAL_WORKSPACE=str(workspace),
               **({"TABULAR_OBSERVATION": "full"} if full else {}))
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return subprocess.run([sys.executable, "-P", "-m", "ctxeval_tabular.tool", str(bundle.tools_dir)], input=text,
                          capture_output=True, text=True, env=env, cwd=workspace, timeout=300)


def tool_result(bundle, data_dir: Path, workspace: Path, config: dict, full: bool = False) -> dict:
    proc = run_tool(bundle, data_dir, workspace, {"config": config}, full)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def grade(bundle, workspace: Path, private: Path, out: Path) -> dict:
    """The bundle's grader, run as the grading sandbox runs it (both libraries named)."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **GRADING_ENV, **LIB_ENV, "CTXEVAL_WORKSPACE": str(workspace),
           "CTXEVAL_PRIVATE": str(private), "CTXEVAL_OUTPUT": str(out)}
    proc = subprocess.run([sys.executable, str(bundle.grader_dir / "grade.py")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "grade.json").read_text())


def config_of(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


# -- bundle.yaml against the library -------------------------------------------------------------

def test_the_tool_and_proposal_schemas_are_the_librarys(bundle, long_bundle):
    task = load_task(bundle.tools_dir)
    n_features = len(pd.read_csv(prepare_data(long_bundle).public / "test.csv", nrows=1).columns) - 1
    most_dropped = n_features - 1  # one feature must be left to train on
    for loaded, expected in ((bundle, config_schema(task)), (long_bundle, config_schema(task, most_dropped))):
        tool = loaded.tool("train_and_evaluate").parameters["properties"]["config"]
        proposal = loaded.controller.proposal_schema["properties"]["config"]
        assert tool == expected and proposal == expected
        assert loaded.controller.score_key == task.score_key
        assert loaded.target.metric == task.metric.name and loaded.target.direction == task.metric.direction


def test_the_bundle_hash_covers_the_library(bundle, tmp_path):
    assert bundle.bundle_lib
    assert bundle_hash(bundle) != hash_tree(bundle.root)  # a library change is a change of the bundle
    toy = load_bundle(BUNDLES_DIR / "toy")
    assert not toy.bundle_lib and bundle_hash(toy) == hash_tree(toy.root)  # bundles without it: as before


# -- data --------------------------------------------------------------------------------------

def test_the_split_is_disjoint_and_complete(name, data):
    train = pd.read_csv(data.public / "train.csv")
    test = pd.read_csv(data.public / "test.csv")
    labels = pd.read_csv(data.private / "test_labels.csv")
    assert (len(train), len(test)) == ROWS[name]
    assert "target" not in test.columns and list(test["id"]) == sorted(test["id"])
    assert set(train["id"]).isdisjoint(test["id"]) and list(labels["id"]) == list(test["id"])
    context = json.loads((data.public / "context.json").read_text())
    assert context["rows"] == {"train": ROWS[name][0], "test": ROWS[name][1]}
    assert set(context["features"]) == set(train.columns) - {"id", "target"}


def test_the_long_variants_leak_carries_the_target_in_train_only(name, long_data):
    train = pd.read_csv(long_data.public / "train.csv")
    test = pd.read_csv(long_data.public / "test.csv").merge(pd.read_csv(long_data.private / "test_labels.csv"))
    leak = LEAKS[name]
    assert np.corrcoef(train[leak], train["target"])[0, 1] > 0.85
    assert abs(np.corrcoef(test[leak], test["target"])[0, 1]) < 0.2


# -- the tool ------------------------------------------------------------------------------------

@pytest.mark.parametrize("arguments, message", [
    ("", "no arguments on stdin"), ("{", "not valid JSON"), ({"cfg": {}}, "arguments must be a JSON object"),
    ({"config": {"model": "nope"}}, "config.model must be one of"),
    ({"config": {"model": "knn", "C": 1.0}}, "knn: unknown parameter(s) C"),
    ({"config": {"model": "knn", "n_neighbors": 0}}, "knn: n_neighbors must be an integer >= 1"),
    ({"config": {"model": "knn", "drop_features": ["nope"]}}, "unknown feature column(s) nope"),
])
def test_bad_arguments_get_a_clear_error_and_exit_2(bundle, data, tmp_path, arguments, message):
    proc = run_tool(bundle, data.public, tmp_path / "ws", arguments)
    assert proc.returncode == 2 and message in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "ws" / "predictions.csv").exists()


def test_the_tool_writes_metrics_that_validate_and_one_prediction_per_test_row(bundle, data, tmp_path):
    import jsonschema
    result = tool_result(bundle, data.public, tmp_path, config_of(bundle.starter_dir))
    task = load_task(bundle.tools_dir)
    written = json.loads((tmp_path / "metrics.json").read_text())
    jsonschema.validate(written, bundle.output_schema)
    assert written[task.score_key] == result[task.score_key] and written["config"] == result["config"]
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert list(predictions.columns) == ["id", "target"] and len(predictions) == ROWS[bundle.id][1]


def test_the_long_variants_tool_returns_the_experiment_log(long_bundle, long_data, tmp_path):
    result = tool_result(long_bundle, long_data.public, tmp_path, {"model": "random_forest", "n_estimators": 20},
                         full=True)
    report = result["report"]
    for section in ("experiment log", "-fold", "feature importances", "learning curve", "warnings:"):
        assert section in report
    assert 1500 <= len(report) <= 9000
    assert LEAKS[long_bundle.base_id] in report  # the leak ranks among the top features of a tree model


# -- the grader ----------------------------------------------------------------------------------

def test_the_grade_is_the_metric_of_the_predictions(bundle, data, tmp_path):
    tool_result(bundle, data.public, tmp_path / "ws", {"model": "knn", "n_neighbors": 3})
    graded = grade(bundle, tmp_path / "ws", data.private, tmp_path / "out")
    truth = pd.read_csv(data.private / "test_labels.csv")
    predicted = pd.read_csv(tmp_path / "ws" / "predictions.csv").sample(frac=1, random_state=0)  # order is not used
    joined = truth.merge(predicted, on="id", suffixes=("", "_predicted"))
    expected = INDEPENDENT_METRIC[bundle.target.metric](joined["target"], joined["target_predicted"])
    assert graded["valid"] and graded["score"] == pytest.approx(expected, abs=1e-6)


def _rewrite(workspace: Path, edit) -> None:
    frame = pd.read_csv(workspace / "predictions.csv")
    edit(frame).to_csv(workspace / "predictions.csv", index=False)


@pytest.mark.parametrize("edit, reason", [
    (lambda f: f.iloc[1:], "without a prediction"),
    (lambda f: pd.concat([f, f.iloc[:1]]), "duplicate id"),
    (lambda f: f.assign(target=f["target"].astype(object).where(f.index != 3, "nan")), "target must be"),
    (lambda f: f.rename(columns={"target": "label"}), "no target column"),
])
def test_an_unusable_submission_is_invalid_with_its_reason(bundle, data, tmp_path, edit, reason):
    tool_result(bundle, data.public, tmp_path / "ws", config_of(bundle.starter_dir))
    _rewrite(tmp_path / "ws", edit)
    graded = grade(bundle, tmp_path / "ws", data.private, tmp_path / "out")
    assert graded["valid"] is False and reason in graded["reason"] and graded["score"] is None


def test_a_classification_grader_refuses_a_class_that_does_not_exist(tmp_path):
    digits = load_bundle(BUNDLES_DIR / "digits")
    digits_data = prepare_data(digits)
    tool_result(digits, digits_data.public, tmp_path / "ws", config_of(digits.starter_dir))
    _rewrite(tmp_path / "ws", lambda f: f.assign(target=np.where(f.index == 0, 10, f["target"])))
    graded = grade(digits, tmp_path / "ws", digits_data.private, tmp_path / "out")
    assert graded["valid"] is False and "one of the classes 0, 1, 2" in graded["reason"]


# -- the scores the README and bundle.yaml state --------------------------------------------------

def test_the_baseline_scores_what_bundle_yaml_says_and_fails(bundle, data, tmp_path):
    tool_result(bundle, data.public, tmp_path / "ws", config_of(bundle.starter_dir))
    score = grade(bundle, tmp_path / "ws", data.private, tmp_path / "out")["score"]
    assert score == pytest.approx(bundle.target.baseline, abs=5e-5)
    assert not bundle.target.meets_target(score)


def test_the_reference_clears_the_target(bundle, long_bundle, data, long_data, tmp_path):
    for loaded, prepared in ((bundle, data), (long_bundle, long_data)):
        workspace = tmp_path / loaded.id
        tool_result(loaded, prepared.public, workspace, config_of(loaded.reference_dir))
        score = grade(loaded, workspace, prepared.private, tmp_path / f"out-{loaded.id}")["score"]
        assert loaded.target.meets_target(score), (loaded.id, score, loaded.target.target_score())


def test_keeping_the_leak_fails_the_long_variant(long_bundle, long_data, tmp_path):
    """The decisive fact is decisive: the reference with the leak kept misses the threshold."""
    kept = {k: v for k, v in config_of(long_bundle.reference_dir).items() if k != "drop_features"}
    tool_result(long_bundle, long_data.public, tmp_path / "ws", kept)
    score = grade(long_bundle, tmp_path / "ws", long_data.private, tmp_path / "out")["score"]
    assert not long_bundle.target.meets_target(score)


def test_the_scripted_search_reaches_the_target_in_both_modes(bundle, tmp_path):
    for mode in ("controller", "agentic"):
        proc = subprocess.run([sys.executable, "-m", "evaluator", "run", str(bundle.root), "--mode", mode, "--backend",
                               "local", "--runs-dir", str(tmp_path / mode), "--run-id", mode],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        result = json.loads(next((tmp_path / mode / mode / "episodes").glob("*/result.json")).read_text())
        assert result["success"], (mode, result["grade"], result.get("stop"))


@pytest.mark.slow
def test_on_a_long_variant_the_policy_that_forgets_the_owners_warning_fails(tmp_path):
    """The context effect these variants exist for: the same scripted agent and seed succeed with
    full history and fail with a 6-turn window, which drops the decisive fact (the leak)."""
    proc = subprocess.run([sys.executable, "-m", "evaluator", "run", "bundles/diabetes@long", "--mode", "agentic",
                           "--policy", "full_history", "--policy", "sliding_window", "--backend", "local",
                           "--runs-dir", str(tmp_path), "--run-id", "effect"], capture_output=True, text=True,
                          timeout=900, cwd=BUNDLES_DIR.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = {r["agent"]["policy"]["name"]: r for r in
               (json.loads(p.read_text()) for p in (tmp_path / "effect" / "episodes").glob("*/result.json"))}
    kept, forgot = results["full_history"], results["sliding_window"]
    assert kept["success"] and not forgot["success"]
    assert forgot["grade"]["score"] > 90 > 57 > kept["grade"]["score"]  # forgot: the leak kept (rmse ~100)
