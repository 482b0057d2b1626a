"""NOMAD end to end: data fetched from a folder, graded like MLE-bench, checked, and run in real
containers offline with a scripted model under long_context."""
from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from conftest import IN_CI, SHARED_DATA
from evaluator.bundles import load_bundle
from evaluator.bundles.fetch import fetch_raw
from evaluator.errors import CtxevalError
from evaluator.paths import BUNDLES_DIR, PROJECT_ROOT

NOMAD_RAW = SHARED_DATA / "nomad2018"
CLI = [sys.executable, "-m", "evaluator"]


@pytest.fixture(scope="module")
def nomad():
    if not NOMAD_RAW.is_dir():
        if IN_CI:
            pytest.fail(f"the NOMAD data folder {NOMAD_RAW} is missing")
        pytest.skip(f"no NOMAD data at {NOMAD_RAW}")
    bundle = load_bundle(BUNDLES_DIR / "nomad")
    fetch_raw(bundle, NOMAD_RAW)
    return bundle


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=timeout)


def test_fetch_from_a_folder_missing_a_file_names_it(nomad, tmp_path):
    (tmp_path / "train.csv").write_text("id\n1\n")
    with pytest.raises(CtxevalError, match="missing raw file test.csv"):
        fetch_raw(nomad, tmp_path)


def test_kaggle_403_explains_the_rules(nomad, monkeypatch, tmp_path):
    class Refused(Exception):
        response = types.SimpleNamespace(status_code=403)

    class FakeApi:
        def authenticate(self):
            return None

        def competition_download_files(self, *args, **kwargs):
            raise Refused("403 Client Error: Forbidden")

    fake = types.ModuleType("kaggle.api.kaggle_api_extended")
    fake.KaggleApi = FakeApi
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", fake)
    monkeypatch.setenv("CTXEVAL_CACHE_DIR", str(tmp_path))
    with pytest.raises(CtxevalError, match="accept the competition's rules"):
        fetch_raw(nomad)


@pytest.mark.docker
def test_grade_command_scores_the_sample_submission(nomad, tmp_path):
    proc = cli("grade", "nomad", "--submission", str(NOMAD_RAW / "sample_submission.csv"))
    # Kaggle's own sample has 600 rows: not a submission for MLE-bench's 240-row test split
    assert proc.returncode == 0, proc.stderr
    grade = json.loads(proc.stdout)
    assert grade["valid"] is False and "240" in grade["reason"]
    from evaluator.bundles.data import prepare_data
    sample = prepare_data(nomad).public / "sample_submission.csv"
    proc = cli("grade", "nomad", "--submission", str(sample))
    assert proc.returncode == 0, proc.stderr
    grade = json.loads(proc.stdout)
    assert grade["valid"] is True and grade["score"] == pytest.approx(0.21174, abs=1e-9)
    assert grade["details"]["medal"] == "none"


@pytest.mark.docker
def test_check_nomad_oracle_passes_noop_fails(nomad, tmp_path):
    proc = cli("check", "nomad", "--runs-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "PASS oracle passes" in proc.stderr and "PASS noop fails" in proc.stderr


@pytest.mark.docker
def test_run_nomad_long_context_records_baseline_iterations_score_and_medal(nomad, tmp_path):
    proc = cli("run", "nomad", "--policy", "long_context", "--runs-dir", str(tmp_path), "--run-id", "n",
               "--max-steps", "6")
    assert proc.returncode == 0, proc.stderr
    [result_file] = (tmp_path / "n" / "episodes").glob("*/result.json")
    result = json.loads(result_file.read_text())
    assert result["status"] == "completed" and result["agent"]["policy"]["name"] == "long_context"
    iterations = result["metrics"]["iterations"]
    assert iterations[0]["iteration"] == 0 and iterations[0]["score"] is not None  # the starter baseline
    assert len(iterations) >= 2
    assert result["score"] is not None and result["grade"]["details"]["medal"] in (
        "gold", "silver", "bronze", "above_median", "none")
    assert result["best_score"] == min(i["score"] for i in iterations if i["score"] is not None)
