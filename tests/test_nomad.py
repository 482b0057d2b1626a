"""The nomad bundle's data stage, grader and tools, run directly (no Docker): MLE-bench's split
reproduced byte for byte, the metric, submission checks and medal levels, prepare's errors."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from grader_support import GRADING_ENV, import_grader

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "nomad"
PREPARE = BUNDLE / "data" / "prepare.py"
NOMAD_RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "nomad2018"
TARGETS = ["formation_energy_ev_natom", "bandgap_energy_ev"]
MLEBENCH_MD5 = {
    "public/train.csv": "27ef5faad359d2dd4ac872fab5c9010d",
    "public/test.csv": "be4e478c19d962eae8ffde95163fe8b1",
    "private/test.csv": "fc17cf7adf422874ce65f2b1b1265d98",
    "public/sample_submission.csv": "f6ca859f7a81041cad0594cf31f171d9",
}


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


grader = import_grader("nomad_grade", BUNDLE / "grader" / "grade.py")
_environ = dict(os.environ)
nomadlib = _load("nomad_nomadlib", BUNDLE / "tools" / "nomadlib.py")
os.environ.clear()
os.environ.update(_environ)  # nomadlib pins OMP_NUM_THREADS etc.; keep the test session's environment


def run_prepare(raw: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PREPARE), "--raw", str(raw), "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def raw() -> Path:
    if not (NOMAD_RAW / "train.csv").is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the NOMAD data folder {NOMAD_RAW} is missing")
        pytest.skip(f"no NOMAD data at {NOMAD_RAW}")
    return NOMAD_RAW


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nomad-data")
    proc = run_prepare(raw, out)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def answers(prepared) -> pd.DataFrame:
    return pd.read_csv(prepared / "private" / "test.csv")


def grade_frame(frame: pd.DataFrame, prepared: Path, tmp_path: Path) -> dict:
    path = tmp_path / "submission.csv"
    frame.to_csv(path, index=False)
    return grader.grade(path, prepared / "private" / "test.csv")


def grade_text(text: str, prepared: Path, tmp_path: Path) -> dict:
    path = tmp_path / "submission.csv"
    path.write_text(text)
    return grader.grade(path, prepared / "private" / "test.csv")


# ---------------------------------------------------------------------------- data stage


def test_prepare_reproduces_mlebench_md5s(prepared):
    for name, expected in MLEBENCH_MD5.items():
        assert hashlib.md5((prepared / name).read_bytes()).hexdigest() == expected, name


def test_prepare_layout_permissions_and_context(prepared):
    train = pd.read_csv(prepared / "public" / "train.csv")
    test = pd.read_csv(prepared / "public" / "test.csv")
    assert len(train) == 2160 and len(test) == 240
    assert list(train["id"]) == list(range(1, 2161)) and list(test["id"]) == list(range(1, 241))
    assert not set(TARGETS) & set(test.columns)
    assert not (prepared / "public" / "test_labels.csv").exists()
    for path in (prepared / "public", prepared / "private"):
        assert path.stat().st_mode & 0o777 == 0o755
        for file in path.iterdir():
            assert file.stat().st_mode & 0o777 == 0o644, file
    context = json.loads((prepared / "public" / "context.json").read_text())
    assert context["rows"] == {"train": 2160, "test": 240}
    assert set(context["columns"]) == set(train.columns)
    assert all(c["meaning"] for c in context["columns"].values())
    assert sum(context["spacegroup_counts"]["train"].values()) == 2160
    assert context["metric"]["name"] == "mean_rmsle"
    assert any("geometry" in note for note in context["notes"])


def test_prepare_without_train_csv_names_the_file(raw, tmp_path):
    empty = tmp_path / "raw"
    empty.mkdir()
    shutil.copy(raw / "test.csv", empty / "test.csv")
    proc = run_prepare(empty, tmp_path / "out")
    assert proc.returncode != 0
    assert "train.csv" in proc.stderr and "not found" in proc.stderr


def test_prepare_with_wrong_train_csv_names_the_file(raw, tmp_path):
    bad = tmp_path / "raw"
    bad.mkdir()
    train = pd.read_csv(raw / "train.csv")
    train.drop(columns=["bandgap_energy_ev"]).to_csv(bad / "train.csv", index=False)
    proc = run_prepare(bad, tmp_path / "out")
    assert proc.returncode != 0
    assert str(bad / "train.csv") in proc.stderr and "bandgap_energy_ev" in proc.stderr

    train.head(100).to_csv(bad / "train.csv", index=False)
    proc = run_prepare(bad, tmp_path / "out")
    assert proc.returncode != 0
    assert str(bad / "train.csv") in proc.stderr and "100 data rows" in proc.stderr and "2400" in proc.stderr


def test_prepare_checks_md5s_unless_told_not_to(raw, tmp_path):
    changed = tmp_path / "raw"
    changed.mkdir()
    train = pd.read_csv(raw / "train.csv")
    train.loc[0, "bandgap_energy_ev"] += 0.001  # one value differs: same shape, other bytes
    train.to_csv(changed / "train.csv", index=False)
    proc = run_prepare(changed, tmp_path / "out")
    assert proc.returncode != 0
    assert "differ from MLE-bench" in proc.stderr and "public/train.csv" in proc.stderr
    proc = run_prepare(changed, tmp_path / "out2", "--no-verify")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out2" / "private" / "test.csv").is_file()


# ---------------------------------------------------------------------------- grader


def test_sample_submission_scores_mlebench_value(prepared):
    grade = grader.grade(prepared / "public" / "sample_submission.csv", prepared / "private" / "test.csv")
    assert grade["valid"] is True and grade["score"] == 0.21174
    assert grade["metric"] == "mean_rmsle" and grade["details"]["medal"] == "none"
    assert grade["details"]["n_rows"] == 240 and set(grade["details"]["rmsle"]) == set(TARGETS)
    assert grade["details"]["bandgap_mae"] > 0


def test_kaggle_sample_submission_is_rejected_for_its_row_count(raw, prepared):
    grade = grader.grade(raw / "sample_submission.csv", prepared / "private" / "test.csv")
    assert grade["valid"] is False and grade["score"] is None and "240" in grade["reason"]


def test_alignment_is_by_id_not_row_order(answers, prepared, tmp_path):
    perfect = answers[["id", *TARGETS]].sample(frac=1.0, random_state=1)
    assert list(perfect["id"]) != sorted(perfect["id"])
    grade = grade_frame(perfect, prepared, tmp_path)
    assert grade["valid"] is True and grade["score"] == 0.0 and grade["details"]["medal"] == "gold"

    noisy = answers[["id", *TARGETS]].copy()
    noisy[TARGETS] = noisy[TARGETS] * 1.1 + 0.01
    in_order = grade_frame(noisy, prepared, tmp_path)["score"]
    shuffled = grade_frame(noisy.sample(frac=1.0, random_state=2)[["bandgap_energy_ev", "id",
                                                                    "formation_energy_ev_natom"]],
                           prepared, tmp_path)["score"]
    assert in_order == shuffled and in_order > 0


@pytest.mark.parametrize("mutate, reason", [
    (lambda f: f.drop(columns=["bandgap_energy_ev"]), "lacks column(s) bandgap_energy_ev"),
    (lambda f: f.drop(columns=["id"]), "lacks column(s) id"),
    (lambda f: f.iloc[:239], "has 239 rows; expected 240"),
    (lambda f: f.assign(id=[*f["id"].iloc[:-1], f["id"].iloc[0]]), "duplicate id"),
    (lambda f: f.assign(id=[*f["id"].iloc[:-1], 99999]), "not in the test set"),
    (lambda f: f.assign(formation_energy_ev_natom=[float("nan"), *f["formation_energy_ev_natom"].iloc[1:]]),
     "formation_energy_ev_natom is"),
    (lambda f: f.assign(bandgap_energy_ev=[-0.5, *f["bandgap_energy_ev"].iloc[1:]]),
     "bandgap_energy_ev is negative"),
    (lambda f: f.assign(bandgap_energy_ev=["abc", *f["bandgap_energy_ev"].iloc[1:]]),
     "bandgap_energy_ev is not a number: 'abc'"),
])
def test_bad_submissions_are_invalid_with_a_reason(answers, prepared, tmp_path, mutate, reason):
    grade = grade_frame(mutate(answers[["id", *TARGETS]].copy()), prepared, tmp_path)
    assert grade["valid"] is False and grade["score"] is None
    assert reason in grade["reason"], grade["reason"]


def test_nan_inf_and_empty_values_are_named(prepared, tmp_path, answers):
    rows = "\n".join(f"{i},0.1,1.0" for i in answers["id"].iloc[1:])
    first = int(answers["id"].iloc[0])
    for value, reason in (("nan", "is NaN"), ("inf", "is infinite"), ("", "is empty")):
        grade = grade_text(f"id,formation_energy_ev_natom,bandgap_energy_ev\n{first},{value},1.0\n{rows}\n",
                           prepared, tmp_path)
        assert grade["valid"] is False and reason in grade["reason"] and "line 2" in grade["reason"]


def test_missing_file_and_symlink_are_refused(prepared, tmp_path):
    answers_path = prepared / "private" / "test.csv"
    grade = grader.grade(tmp_path / "submission.csv", answers_path)
    assert grade["valid"] is False and "not found" in grade["reason"]
    (tmp_path / "submission.csv").symlink_to(answers_path)
    grade = grader.grade(tmp_path / "submission.csv", answers_path)
    assert grade["valid"] is False and "symbolic link" in grade["reason"]


@pytest.mark.parametrize("score, medal", [
    (0.0, "gold"), (0.05589, "gold"), (0.0559, "silver"), (0.06229, "silver"), (0.0623, "bronze"),
    (0.06582, "bronze"), (0.06583, "above_median"), (0.06987, "above_median"), (0.06988, "none"),
    (0.21174, "none"),
])
def test_medal_levels_at_the_thresholds(score, medal):
    assert grader.medal(score) == medal


def test_grader_main_writes_grade_json(prepared, tmp_path):
    workspace, output = tmp_path / "ws", tmp_path / "out"
    workspace.mkdir()
    output.mkdir()
    shutil.copy(prepared / "public" / "sample_submission.csv", workspace / "submission.csv")
    env = {**os.environ, **GRADING_ENV, "CTXEVAL_WORKSPACE": str(workspace),
           "CTXEVAL_PRIVATE": str(prepared / "private"), "CTXEVAL_OUTPUT": str(output)}
    proc = subprocess.run([sys.executable, str(BUNDLE / "grader" / "grade.py")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    grade = json.loads((output / "grade.json").read_text())
    assert grade["schema_version"] == 1 and grade["valid"] is True and grade["score"] == 0.21174


# ---------------------------------------------------------------------------- tools


def run_tool(tool: str, args: dict | str, workspace: Path, data: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CTXEVAL_WORKSPACE": str(workspace), "CTXEVAL_DATA": str(data),
           "CTXEVAL_TOOLS": str(BUNDLE / "tools")}
    stdin = args if isinstance(args, str) else json.dumps(args)
    return subprocess.run([sys.executable, str(BUNDLE / "tools" / f"{tool}.py")], input=stdin, env=env,
                          capture_output=True, text=True, timeout=120, cwd=workspace)


@pytest.fixture
def workspace(tmp_path) -> Path:
    folder = tmp_path / "workspace"
    shutil.copytree(BUNDLE / "starter", folder)
    assert not (folder / "submission.csv").exists() and not (folder / "metrics.json").exists()
    return folder


def test_predict_writes_a_gradable_submission(prepared, workspace):
    config = json.loads((workspace / "config.json").read_text())
    proc = run_tool("predict", {"config": config}, workspace, prepared / "public")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["config"] == config and result["n_features"] == 11
    metrics = json.loads((workspace / "metrics.json").read_text())
    assert metrics["metric"] == "mean_rmsle" and metrics["cv_mean_rmsle"] is None
    assert metrics["submission"] == "submission.csv"
    grade = grader.grade(workspace / "submission.csv", prepared / "private" / "test.csv")
    assert grade["valid"] is True and grade["score"] == 0.06807  # the starter's baseline (bundle.yaml)


@pytest.mark.parametrize("args, message", [
    ({"config": {"max_iter": 5000}}, "invalid config: max_iter must be an integer from 1 to 500"),
    ("not json", "stdin is not valid JSON"),
])
def test_tools_reject_bad_arguments_with_exit_2(prepared, workspace, args, message):
    proc = run_tool("train_and_evaluate", args, workspace, prepared / "public")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (workspace / "submission.csv").exists()


@pytest.mark.parametrize("config, message", [
    ({"max_iter": 0}, "max_iter must be an integer from 1 to 500, got 0"),
    ({"max_leaf_nodes": 65}, "max_leaf_nodes must be an integer from 2 to 64"),
    ({"learning_rate": 0}, "learning_rate must be a number from 0.001 to 1"),
    ({"max_depth": 2.5}, "max_depth must be an integer from 1 to 20 or null"),
    ({"n_estimators": 10}, "unknown parameter(s) n_estimators"),
    ({"log_target": "yes"}, "log_target must be true or false"),
    ([1, 2], "config must be a JSON object"),
])
def test_config_validation_says_what_is_wrong(config, message):
    with pytest.raises(nomadlib.ConfigError) as caught:
        nomadlib.validate_config(config)
    assert message in str(caught.value)


def test_config_defaults_are_sklearn_defaults_and_match_the_manifest():
    import yaml

    resolved = nomadlib.validate_config({})
    assert resolved == {"learning_rate": 0.1, "max_iter": 100, "max_depth": None, "max_leaf_nodes": 31,
                        "min_samples_leaf": 20, "l2_regularization": 0.0, "log_target": False}
    manifest = yaml.safe_load((BUNDLE / "bundle.yaml").read_text())
    schema = manifest["tools"][0]["parameters"]["properties"]["config"]["properties"]
    assert set(schema) == set(nomadlib.PARAMS)
    for name, spec in nomadlib.PARAMS.items():
        if spec.kind != "bool":
            assert (schema[name]["minimum"], schema[name]["maximum"]) == (spec.low, spec.high), name
    assert nomadlib.validate_config(json.loads((BUNDLE / "starter" / "config.json").read_text()))
    assert nomadlib.validate_config(json.loads((BUNDLE / "reference" / "config.json").read_text()))


def test_broken_features_py_is_reported(prepared, workspace):
    (workspace / "features.py").write_text("def make_features(df):\n    return df.assign(bad=1 / 0)\n")
    proc = run_tool("predict", {"config": {}}, workspace, prepared / "public")
    assert proc.returncode == 1 and "make_features failed on train" in proc.stderr
    assert "ZeroDivisionError" in proc.stderr
    (workspace / "features.py").write_text("def make_features(df):\n    return df.assign(name='x')\n")
    proc = run_tool("predict", {"config": {}}, workspace, prepared / "public")
    assert proc.returncode == 1 and "not numeric: ['name']" in proc.stderr
