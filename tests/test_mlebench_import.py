"""`ctxeval import mlebench`: a small competition written here in MLE-bench's layout (its own tiny
mlebench package, config.yaml, prepare.py, grade.py, a 120-team leaderboard, checksums.yaml with the
md5s its prepare really writes) is imported; the bundle loads, its medal thresholds follow Kaggle's
rule, its data stage verifies the checksums, its grader scores through the competition's own grade
function, and every broken input is reported with the file (and key) at fault. With Docker,
`ctxeval check` passes on it and an invalid submission is graded invalid with the competition's reason.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from evaluator.bundles import load_bundle
from evaluator.bundles.data import prepare_data
from evaluator.bundles.fetch import fetch_raw
from evaluator.errors import CtxevalError, ValidationFailed
from evaluator.importers.medals import medal_positions
from evaluator.importers.mlebench import ImportOptions, import_mlebench
from evaluator.jsonschemas import project_schema, violations
from evaluator.paths import PROJECT_ROOT

COMPETITION = "tiny-sum-classification"
BUNDLE_ID = "tiny_sum_classification"
TEAMS = 120
ABSENT = "ctxeval_test_absent_archiver"  # imported at module level by the tiny mlebench/utils.py, as py7zr is
CLI = [sys.executable, "-m", "evaluator"]

GRADE_HELPERS = '''
class InvalidSubmissionError(Exception):
    """A submission that cannot be graded."""
'''
UTILS = f'''
import pandas as pd
import {ABSENT}  # an archive library grading never uses


def read_csv(*args, **kwargs):
    return pd.read_csv(*args, **{{"float_precision": "round_trip", **kwargs}})
'''
PREPARE = '''
from pathlib import Path

from mlebench.utils import read_csv


def prepare(raw: Path, public: Path, private: Path):
    data = read_csv(raw / "train.csv")
    test = data[data["id"] % 4 == 0]
    train = data[data["id"] % 4 != 0]
    train.to_csv(public / "train.csv", index=False)
    test.drop(columns=["label"]).to_csv(public / "test.csv", index=False)
    test.to_csv(private / "test.csv", index=False)
    sample = test[["id"]].copy()
    sample["label"] = 0
    sample.to_csv(public / "sample_submission.csv", index=False)
'''
GRADE = '''
import pandas as pd

from mlebench.grade_helpers import InvalidSubmissionError


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    for column in ("id", "label"):
        if column not in submission.columns:
            raise InvalidSubmissionError(f"Submission must have a `{column}` column")
    if len(submission) != len(answers):
        raise InvalidSubmissionError("Submission must have the same length as the answers.")
    submission = submission.sort_values("id").reset_index(drop=True)
    answers = answers.sort_values("id").reset_index(drop=True)
    if (submission["id"].values != answers["id"].values).any():
        raise InvalidSubmissionError("Submission and answers ids do not match")
    return float((submission["label"].values == answers["label"].values).mean())
'''
REFERENCE = '''
import json
import os

import pandas as pd

test = pd.read_csv(os.path.join(os.environ["CTXEVAL_DATA"], "test.csv"))
label = (test["x1"] + test["x2"] > 1).astype(int)
pd.DataFrame({"id": test["id"], "label": label}).to_csv("submission.csv", index=False)
with open("metrics.json", "w") as handle:
    json.dump({"submission": "submission.csv", "validation_score": None, "notes": "the rule"}, handle)
'''
CHECKSUM_SCRIPT = f'''
import hashlib, json, sys, types
from pathlib import Path
sys.modules["{ABSENT}"] = types.ModuleType("{ABSENT}")
sys.path.insert(0, sys.argv[1])
import importlib
prepare = importlib.import_module("mlebench.competitions.{COMPETITION}.prepare").prepare
raw, out = Path(sys.argv[2]), Path(sys.argv[3])
(out / "public").mkdir(parents=True); (out / "private").mkdir()
prepare(raw=raw, public=out / "public", private=out / "private")
print(json.dumps({{part: {{p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in (out / part).glob("*.csv")}}
                  for part in ("public", "private")}}))
'''


def leaderboard_scores() -> list[float]:
    """120 teams, best first (higher is better), with ties."""
    rng = random.Random(3)
    return sorted((round(rng.uniform(0.5, 0.99), 3) for _ in range(TEAMS)), reverse=True)


def write_raw(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    lines = ["id,x1,x2,label"]
    for i in range(1, 401):
        x1, x2 = round(rng.random(), 4), round(rng.random(), 4)
        lines.append(f"{i},{x1},{x2},{int(x1 + x2 > 1)}")
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    return folder


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def real_checksums(checkout: Path, raw: Path, scratch: Path) -> dict:
    """The md5s of what the competition's prepare writes, as `mlebench prepare` would generate them."""
    proc = subprocess.run([sys.executable, "-c", CHECKSUM_SCRIPT, str(checkout), str(raw), str(scratch)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def write_competition(root: Path) -> Path:
    """An MLE-bench checkout under root/mlebench-checkout holding one competition; its folder."""
    checkout = root / "mlebench-checkout"
    folder = checkout / "mlebench" / "competitions" / COMPETITION
    write(checkout / "mlebench" / "grade_helpers.py", GRADE_HELPERS)
    write(checkout / "mlebench" / "utils.py", UTILS)
    write(folder / "prepare.py", PREPARE)
    write(folder / "grade.py", GRADE)
    write(folder / "description.md", "# Tiny sum classification\n\nPredict `label` for every row of test.csv.\n")
    config = {"id": COMPETITION, "name": "Tiny Sum Classification", "competition_type": "simple",
              "awards_medals": False, "prizes": None,
              "description": f"mlebench/competitions/{COMPETITION}/description.md",
              "dataset": {"answers": f"{COMPETITION}/prepared/private/test.csv",
                          "sample_submission": f"{COMPETITION}/prepared/public/sample_submission.csv"},
              "grader": {"name": "accuracy", "grade_fn": f"mlebench.competitions.{COMPETITION}.grade:grade"},
              "preparer": f"mlebench.competitions.{COMPETITION}.prepare:prepare"}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    rows = ["teamId,score,submissionDate"] + [f"{1000 + i},{s},2024-01-01" for i, s in enumerate(leaderboard_scores())]
    (folder / "leaderboard.csv").write_text("\n".join(rows) + "\n")
    sums = real_checksums(checkout, write_raw(root / "raw"), root / "checksum-scratch")
    (folder / "checksums.yaml").write_text(yaml.safe_dump({"private": sums["private"], "public": sums["public"],
                                                           "zip": "0" * 32}))
    write(root / "reference" / "make_submission.py", REFERENCE)
    return folder


@pytest.fixture
def competition(tmp_path) -> Path:
    return write_competition(tmp_path)


def do_import(folder: Path, out: Path, **options) -> Path:
    checkout = folder.parents[2]
    options.setdefault("reference", checkout.parent / "reference")
    result = import_mlebench(ImportOptions(checkout=checkout, competition_id=COMPETITION, out=out, **options))
    return result.path


def expected_thresholds(scores: list[float]) -> dict:
    """Kaggle's progression rule for 100-249 teams, written out: gold = 10th place, silver = the top
    20 %, bronze = the top 40 %; the median of all scores."""
    assert 100 <= len(scores) < 250
    ordered = sorted(scores)
    middle = len(ordered) // 2
    return {"gold": scores[10 - 1], "silver": scores[len(scores) * 20 // 100 - 1],
            "bronze": scores[len(scores) * 40 // 100 - 1], "median": (ordered[middle - 1] + ordered[middle]) / 2}


def test_import_writes_a_bundle_ctxeval_loads(competition, tmp_path):
    path = do_import(competition, tmp_path / "bundles" / BUNDLE_ID)
    bundle = load_bundle(path)
    assert bundle.id == BUNDLE_ID and bundle.grader_submission == "submission.csv"
    assert bundle.target.metric == "accuracy" and bundle.target.direction == "maximize"
    medals = bundle.raw["target"]["medals"]
    expected = expected_thresholds(leaderboard_scores())
    for level in ("gold", "silver", "bronze", "median"):
        assert medals[level] == pytest.approx(expected[level], abs=1e-12), level
    assert medals["teams"] == TEAMS and medals["lower_is_better"] is False
    assert bundle.target.success.rule == "threshold" and bundle.target.success.threshold == medals["bronze"]
    assert bundle.data.fetch.kaggle == COMPETITION and bundle.data.fetch.files == ["train.csv"]
    task = bundle.task_text
    assert "Predict `label` for every row of test.csv." in task and "$CTXEVAL_DATA" in task
    assert "submission.csv" in task
    # the competition's code and the mlebench modules it imports are copied; nothing else of mlebench
    copied = sorted(p.relative_to(path / "grader" / "mlebench_src").as_posix()
                    for p in (path / "grader" / "mlebench_src").rglob("*.py") if p.name != "__init__.py")
    assert copied == ["mlebench/competitions/tiny-sum-classification/grade.py",
                      "mlebench/competitions/tiny-sum-classification/prepare.py",
                      "mlebench/grade_helpers.py", "mlebench/utils.py"]
    runtime = json.loads((path / "grader" / "competition.json").read_text())
    assert runtime["stub_modules"] == [ABSENT] and runtime["answers"] == "test.csv"
    starter = (path / "starter" / "make_submission.py").read_text()
    assert 'SAMPLE_SUBMISSION = "sample_submission.csv"' in starter
    assert not list(path.parent.glob(".ctxeval-import-*")), "the staging folder is left behind"


def test_the_default_folder_is_bundles_id_of_the_checkout(competition, tmp_path, monkeypatch):
    from evaluator import paths
    monkeypatch.setattr(paths, "BUNDLES_DIR", tmp_path / "bundles")
    checkout = competition.parents[2]
    result = import_mlebench(ImportOptions(checkout=checkout, competition_id=COMPETITION))
    assert result.path == tmp_path / "bundles" / BUNDLE_ID and load_bundle(result.path).id == BUNDLE_ID
    assert any("--reference" in note for note in result.warnings)  # no oracle: `ctxeval check` cannot pass
    assert load_bundle(result.path).reference_dir is None
    result = import_mlebench(ImportOptions(checkout=checkout, competition_id=COMPETITION, bundle_id="tiny"))
    assert result.path == tmp_path / "bundles" / "tiny" and load_bundle(result.path).id == "tiny"


@pytest.mark.parametrize("teams, positions", [(7, (1, 1, 2)), (50, (5, 10, 20)), (120, (10, 24, 48)),
                                              (249, (10, 49, 99)), (250, (10, 50, 100)), (879, (11, 50, 100)),
                                              (1000, (12, 50, 100)), (4321, (18, 216, 432))])
def test_medal_positions_follow_kaggles_progression_rule(teams, positions):
    assert medal_positions(teams) == positions


def test_lower_is_better_when_the_first_row_scores_below_the_last(competition, tmp_path):
    scores = [0.10 + 0.01 * i for i in range(TEAMS)]  # an error metric: the winner has the lowest
    rows = ["teamId,score"] + [f"{i},{s}" for i, s in enumerate(scores)]
    (competition / "leaderboard.csv").write_text("\n".join(rows) + "\n")
    bundle = load_bundle(do_import(competition, tmp_path / "out"))
    assert bundle.target.direction == "minimize"
    assert bundle.raw["target"]["medals"]["bronze"] == pytest.approx(scores[47])
    assert bundle.target.meets_target(scores[47]) and not bundle.target.meets_target(scores[48])


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CTXEVAL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_data_prepare_runs_the_competitions_prepare_and_verifies_checksums(competition, tmp_path, cache):
    bundle = load_bundle(do_import(competition, tmp_path / "out"))
    fetch_raw(bundle, tmp_path / "raw")
    prepared = prepare_data(bundle)
    assert sorted(p.name for p in prepared.public.iterdir()) == ["context.json", "description.md",
                                                                 "sample_submission.csv", "test.csv", "train.csv"]
    answers = (prepared.private / "test.csv").read_text().splitlines()
    assert answers[0] == "id,x1,x2,label" and len(answers) == 101
    expected = yaml.safe_load((competition / "checksums.yaml").read_text())
    assert hashlib.md5((prepared.private / "test.csv").read_bytes()).hexdigest() == expected["private"]["test.csv"]


POSITION_GRADE = '''
import pandas as pd


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    return float((submission["label"].values == answers["label"].values).mean())  # row i against row i
'''


@pytest.mark.parametrize("grade_source, expected", [(GRADE, "id"), (POSITION_GRADE, "position")])
def test_the_data_stage_says_whether_rows_are_matched_by_id_or_position(competition, tmp_path, cache, grade_source,
                                                                         expected):
    write(competition / "grade.py", grade_source)
    bundle = load_bundle(do_import(competition, tmp_path / "out"))
    fetch_raw(bundle, tmp_path / "raw")
    context = json.loads((prepare_data(bundle).public / "context.json").read_text())
    assert context["row_alignment"] == expected and context["competition"] == COMPETITION
    assert "context.json" in bundle.task_path.read_text()  # the task tells the agent where to look


def test_a_tampered_checksum_fails_the_data_stage_naming_checksums_yaml(competition, tmp_path, cache):
    sums = yaml.safe_load((competition / "checksums.yaml").read_text())
    sums["public"]["train.csv"] = "0" * 32
    (competition / "checksums.yaml").write_text(yaml.safe_dump(sums))
    bundle = load_bundle(do_import(competition, tmp_path / "out"))
    fetch_raw(bundle, tmp_path / "raw")
    with pytest.raises(CtxevalError) as exc:
        prepare_data(bundle)
    message = str(exc.value)
    assert "checksums.yaml" in message and "public/train.csv" in message and "expected " + "0" * 32 in message


def test_a_missing_config_key_names_config_yaml_and_the_key(competition, tmp_path):
    config = yaml.safe_load((competition / "config.yaml").read_text())
    del config["dataset"]["answers"]
    (competition / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValidationFailed) as exc:
        do_import(competition, tmp_path / "out")
    [violation] = exc.value.violations
    assert violation.file == str(competition / "config.yaml") and violation.json_path == "$.dataset.answers"
    assert "dataset.answers" in violation.message
    assert not (tmp_path / "out").exists()


def test_a_grade_fn_that_does_not_import_names_grade_py(competition, tmp_path):
    (competition / "grade.py").write_text("from mlebench.no_such_module import helper\n" + GRADE)
    with pytest.raises(ValidationFailed) as exc:
        do_import(competition, tmp_path / "out")
    [violation] = exc.value.violations
    assert violation.file == str(competition / "grade.py")
    assert "grader.grade_fn" in violation.message and "mlebench.no_such_module" in violation.message
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".ctxeval-import-*"))


def test_a_preparer_with_the_wrong_parameters_names_prepare_py(competition, tmp_path):
    (competition / "prepare.py").write_text(PREPARE.replace("def prepare(raw: Path, public: Path, private: Path)",
                                                            "def prepare(raw: Path, out: Path)"))
    with pytest.raises(ValidationFailed) as exc:
        do_import(competition, tmp_path / "out")
    assert [v.file for v in exc.value.violations] == [str(competition / "prepare.py")]
    assert "(raw, out)" in exc.value.violations[0].message


def test_a_leaderboard_without_a_score_column_names_leaderboard_csv(competition, tmp_path):
    (competition / "leaderboard.csv").write_text("teamId,points\n1,0.5\n")
    with pytest.raises(ValidationFailed) as exc:
        do_import(competition, tmp_path / "out")
    [violation] = exc.value.violations
    assert violation.file == str(competition / "leaderboard.csv") and "'score'" in violation.message


def test_missing_files_and_bad_checksums_are_all_named(competition, tmp_path):
    (competition / "description.md").unlink()
    (competition / "checksums.yaml").write_text("public: {train.csv: nothex}\n")
    with pytest.raises(ValidationFailed) as exc:
        do_import(competition, tmp_path / "out")
    found = {(Path(v.file).name, v.json_path) for v in exc.value.violations}
    assert found == {("config.yaml", "$.description"), ("checksums.yaml", "$.private"),
                     ("checksums.yaml", "$.public.train.csv")}


def test_an_existing_folder_is_replaced_only_with_force(competition, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(CtxevalError, match="--force"):
        do_import(competition, out)
    assert (out / "keep.txt").read_text() == "mine"
    do_import(competition, out, force=True)
    assert not (out / "keep.txt").exists() and load_bundle(out).id == BUNDLE_ID


def test_the_medals_key_is_checked_by_the_bundle_schema():
    raw = yaml.safe_load((PROJECT_ROOT / "bundles" / "toy" / "bundle.yaml").read_text())
    raw["target"]["medals"] = {"gold": 0.9, "silver": 0.8, "bronze": 0.7, "median": 0.6, "teams": 10,
                               "lower_is_better": False, "success_level": "bronze"}
    assert violations(raw, project_schema("bundle"), "bundle.yaml") == []
    del raw["target"]["medals"]["gold"]
    raw["target"]["medals"]["teams"] = 0
    paths = {v.json_path for v in violations(raw, project_schema("bundle"), "bundle.yaml")}
    assert paths == {"$.target.medals", "$.target.medals.teams"}


def run_grader(bundle_root: Path, private: Path, submission: str, scratch: Path) -> dict:
    """The bundle's grader run on the host, as the grading sandbox runs it (same variables)."""
    workspace, output = scratch / "workspace", scratch / "output"
    workspace.mkdir(parents=True)
    output.mkdir()
    (workspace / "submission.csv").write_text(submission)
    env = {**os.environ, "CTXEVAL_GRADING_LIB": str(PROJECT_ROOT / "evaluator" / "grading_lib"),
           "CTXEVAL_WORKSPACE": str(workspace), "CTXEVAL_PRIVATE": str(private), "CTXEVAL_OUTPUT": str(output),
           "CTXEVAL_GRADER": str(bundle_root / "grader")}
    proc = subprocess.run([sys.executable, str(bundle_root / "grader" / "grade.py")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads((output / "grade.json").read_text())


def test_the_grader_scores_with_the_competitions_grade_function(competition, tmp_path, cache):
    root = do_import(competition, tmp_path / "out")
    bundle = load_bundle(root)
    fetch_raw(bundle, tmp_path / "raw")
    prepared = prepare_data(bundle)
    answers = (prepared.private / "test.csv").read_text().splitlines()[1:]
    sample = (prepared.public / "sample_submission.csv").read_text()
    zeros = sum(1 for line in answers if line.endswith(",0")) / len(answers)
    grade = run_grader(root, prepared.private, sample, tmp_path / "sample")
    assert grade["valid"] is True and grade["score"] == pytest.approx(round(zeros, 5), abs=1e-12)
    assert grade["metric"] == "accuracy" and grade["details"]["medal"] == "none"
    perfect = "id,label\n" + "\n".join(f"{line.split(',')[0]},{line.split(',')[-1]}" for line in reversed(answers))
    grade = run_grader(root, prepared.private, perfect + "\n", tmp_path / "perfect")
    assert grade["score"] == 1.0 and grade["details"]["medal"] == "gold" and grade["details"]["any_medal"] is True
    wrong = sample.replace("id,label", "id,prediction", 1)
    grade = run_grader(root, prepared.private, wrong, tmp_path / "wrong")
    assert grade["valid"] is False and grade["score"] is None
    assert grade["reason"] == "Submission must have a `label` column"
    grade = run_grader(root, prepared.private, "", tmp_path / "empty")
    assert grade["valid"] is False and "empty" in grade["reason"]


def cli(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=timeout)


def test_the_cli_imports_and_refuses_to_overwrite(competition, tmp_path):
    checkout = competition.parents[2]
    out = tmp_path / "cli-out"
    args = ("import", "mlebench", COMPETITION, "--from", str(checkout), "--out", str(out),
            "--reference", str(checkout.parent / "reference"))
    proc = cli(*args, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert f"bundle {BUNDLE_ID} written to {out}" in proc.stdout and "120 teams" in proc.stderr
    proc = cli(*args, env=dict(os.environ))
    assert proc.returncode != 0 and "--force" in proc.stderr


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """One imported bundle with its raw data fetched into a cache of its own, for the Docker tests."""
    root = tmp_path_factory.mktemp("mlebench")
    folder = write_competition(root)
    env = {**os.environ, "CTXEVAL_CACHE_DIR": str(root / "cache")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CTXEVAL_CACHE_DIR", env["CTXEVAL_CACHE_DIR"])
        path = do_import(folder, root / "bundles" / BUNDLE_ID)
        fetch_raw(load_bundle(path), root / "raw")
    return path, env, root


@pytest.mark.docker
@pytest.mark.slow
def test_check_passes_on_the_imported_bundle(imported):
    path, env, root = imported
    proc = cli("check", str(path), "--backend", "docker", "--runs-dir", str(root / "runs"), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS oracle passes" in proc.stderr and "PASS noop fails" in proc.stderr


@pytest.mark.docker
def test_grade_command_records_an_invalid_submission_with_the_competitions_reason(imported):
    path, env, root = imported
    bad = root / "bad.csv"
    bad.write_text("id,prediction\n4,1\n8,0\n")
    proc = cli("grade", str(path), "--submission", str(bad), "--backend", "docker", env=env)
    assert proc.returncode == 0, proc.stderr
    grade = json.loads(proc.stdout)
    assert grade["valid"] is False and grade["reason"] == "Submission must have a `label` column"
