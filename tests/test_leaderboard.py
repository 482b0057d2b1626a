"""`ctxeval submit` / `ctxeval leaderboard`: an honest submission is accepted and ranked with the
right statistics; every kind of tampering is rejected with its reason, down to tampering that
only a fresh re-grade of the artefacts can catch."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator.analysis.leaderboard import (LEADERBOARD_ENV, accept_submission, leaderboard_dir,
                                            leaderboard_table, verify_submission)
from evaluator.analysis.loading import load_run
from evaluator.analysis.submission import (SUBMISSION_FILE, SubmissionArm, artefact_digest, build_submission,
                                           compute_totals, write_submission)
from evaluator.errors import CtxevalError
from evaluator.paths import PROJECT_ROOT

CLI = [sys.executable, "-m", "evaluator"]
HONEST = SubmissionArm(mode="controller", model="scripted:hill_climb", policy="full_history")
OTHER = SubmissionArm(mode="controller", model="scripted:hill_climb", policy="short_context")


@pytest.fixture(autouse=True)
def _never_the_projects_leaderboard(tmp_path, monkeypatch):
    monkeypatch.setenv(LEADERBOARD_ENV, str(tmp_path / "default-leaderboard"))


def ctxeval(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=PROJECT_ROOT,
                          env={**os.environ, **(env or {})}, timeout=600)


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval, written out (not the code under test)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def edit(folder: Path, change) -> None:
    path = folder / SUBMISSION_FILE
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2))


def flip_predictions(workspace: Path, rows: int = 40) -> None:
    path = workspace / "predictions.csv"
    lines = path.read_text().splitlines()
    for i in range(1, rows + 1):
        row_id, target = lines[i].split(",")
        lines[i] = f"{row_id},{1 - int(target)}"
    path.write_text("\n".join(lines) + "\n")


# -- a real docker run: two arms (two policies) x two seeds -----------------------------------------
@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, toy_image):
    runs = tmp_path_factory.mktemp("runs")
    proc = ctxeval("run", "toy", "--seeds", "2", "--policy", "full_history", "--policy", "short_context",
                   "--backend", "docker", "--max-parallel", "2", "--run-id", "lb", "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = load_run(runs / "lb")
    assert len(run.results) == 4 and not run.invalid
    return runs, run


@pytest.fixture(scope="module")
def honest(toy_run, tmp_path_factory):
    """The honest submission of the full_history arm, written once."""
    _, run = toy_run
    folder, _ = write_submission(run, tmp_path_factory.mktemp("sub") / "honest", HONEST)
    return folder


@pytest.fixture
def copy(honest, tmp_path):
    """A fresh copy of the honest submission to tamper with."""
    target = tmp_path / "tampered"
    shutil.copytree(honest, target, symlinks=True)
    return target


@pytest.mark.docker
def test_honest_submission_is_accepted_and_ranked(toy_run, honest, tmp_path):
    runs, run = toy_run
    board = tmp_path / "board"
    proc = ctxeval("submit", "lb", "--policy", "full_history", "--runs-dir", str(runs), "--leaderboard", str(board))
    assert proc.returncode == 0, proc.stderr
    assert "accepted:" in proc.stdout
    [entry] = [p for p in board.iterdir() if not p.name.startswith(".")]
    document = json.loads((entry / SUBMISSION_FILE).read_text())
    assert (document["model"], document["policy"], document["mode"]) == (HONEST.model, HONEST.policy, HONEST.mode)
    assert {e["episode_id"] for e in document["episodes"]} == {p.name for p in (entry / "artefacts").iterdir()}
    for episode in document["episodes"]:
        assert artefact_digest(entry / "artefacts" / episode["episode_id"]) == episode["artefact_digest"]
    assert not (PROJECT_ROOT / "leaderboard" / entry.name).exists()

    listing = ctxeval("leaderboard", "--dir", str(board), "--json")
    assert listing.returncode == 0, listing.stderr
    [row] = json.loads(listing.stdout)
    mine = [r for r in run.results if r["agent"]["policy"]["name"] == "full_history"]
    successes = sum(r["success"] for r in mine)
    assert (row["bundle"], row["n"], row["successes"], row["rank"]) == ("toy", 2, successes, 1)
    low, high = wilson(successes, 2)
    assert row["success_rate"]["estimate"] == successes / 2
    assert row["success_rate"]["low"] == pytest.approx(low, abs=1e-9)
    assert row["success_rate"]["high"] == pytest.approx(high, abs=1e-9)
    scores = [r["score"] for r in mine]
    assert row["mean_score"]["estimate"] == pytest.approx(sum(scores) / 2, abs=1e-12)
    assert row["mean_score"]["low"] <= row["mean_score"]["estimate"] <= row["mean_score"]["high"]
    assert row["mean_tokens"] == pytest.approx(sum(r["metrics"]["prompt_tokens"] + r["metrics"]["completion_tokens"]
                                                   + r["metrics"]["summarizer_tokens"] for r in mine) / 2)
    table = ctxeval("leaderboard", "--dir", str(board), "--bundle", "toy")
    assert table.returncode == 0 and "full_history" in table.stdout and "accuracy" in table.stdout

    # the same submission shipped elsewhere (a foreign folder) verifies on its own and is not stored twice
    moved = tmp_path / "elsewhere"
    shutil.copytree(honest, moved)
    again = ctxeval("submit", "--folder", str(moved), "--leaderboard", str(board))
    assert again.returncode == 0, again.stderr
    assert "already on the leaderboard" in again.stdout
    assert len([p for p in board.iterdir() if not p.name.startswith(".")]) == 1


@pytest.mark.docker
def test_a_run_with_two_arms_needs_one_chosen(toy_run, tmp_path):
    runs, run = toy_run
    with pytest.raises(CtxevalError) as info:
        build_submission(run)
    assert "full_history" in str(info.value) and "short_context" in str(info.value)
    board = tmp_path / "board"
    proc = ctxeval("submit", "lb", "--runs-dir", str(runs), "--leaderboard", str(board))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error:" in proc.stderr and "policy=full_history" in proc.stderr and "policy=short_context" in proc.stderr
    assert not board.exists()
    chosen = ctxeval("submit", "lb", "--runs-dir", str(runs), "--policy", "short_context",
                     "--leaderboard", str(board), "--out", str(tmp_path / "short"))
    assert chosen.returncode == 0, chosen.stderr
    document = json.loads((tmp_path / "short" / SUBMISSION_FILE).read_text())
    assert document["policy"] == "short_context" and len(document["episodes"]) == 2
    assert {e["seed"] for e in document["episodes"]} == {0, 1}


@pytest.mark.docker
def test_an_edited_score_is_caught(copy):
    edit(copy, lambda d: d["episodes"][0].update(score=0.95))
    reasons = verify_submission(copy, "docker")
    assert any("$.totals.mean_score.toy" in r for r in reasons), reasons
    assert any("$.episodes[0].score: 0.95 claimed, the re-grade gives 0.878" in r for r in reasons), reasons


@pytest.mark.docker
def test_edited_scores_with_consistent_totals_are_caught_by_the_regrade_alone(copy):
    def change(document):
        for episode in document["episodes"]:
            episode["score"] = 0.95
        document["totals"] = compute_totals(document["episodes"])
    edit(copy, change)
    reasons = verify_submission(copy, "docker")
    assert len(reasons) == 2, reasons
    assert all("re-grade gives 0.878" in r for r in reasons), reasons


@pytest.mark.docker
def test_a_wrong_bundle_hash_is_rejected(copy, tmp_path):
    edit(copy, lambda d: d["bundles"][0].update(bundle_hash="0" * 64))
    reasons = verify_submission(copy, "docker")
    assert len(reasons) == 1 and "$.bundles[0].bundle_hash" in reasons[0], reasons
    unknown = verify_submission(copy, "docker", bundles_root=tmp_path / "no-bundles")
    assert len(unknown) == 1 and "unknown bundle 'toy'" in unknown[0], unknown


@pytest.mark.docker
def test_a_schema_violation_names_the_json_path(copy):
    edit(copy, lambda d: (d["episodes"][1].update(seed="one"), d.update(extra=1)))
    reasons = verify_submission(copy, "docker")
    assert any(r.startswith("submission.json: $.episodes[1].seed:") for r in reasons), reasons
    assert any(r.startswith("submission.json: $: unknown field(s)") and "extra" in r for r in reasons), reasons


@pytest.mark.docker
def test_an_edited_artefact_fails_its_digest(copy):
    first = json.loads((copy / SUBMISSION_FILE).read_text())["episodes"][0]["episode_id"]
    flip_predictions(copy / "artefacts" / first)
    reasons = verify_submission(copy, "docker")
    assert len(reasons) == 1 and reasons[0].startswith(f"artefacts/{first}: digest"), reasons
    assert "$.episodes[0].artefact_digest" in reasons[0]


@pytest.mark.docker
def test_an_edited_artefact_with_its_digest_updated_is_caught_by_the_regrade(copy):
    first = json.loads((copy / SUBMISSION_FILE).read_text())["episodes"][0]["episode_id"]
    flip_predictions(copy / "artefacts" / first)
    edit(copy, lambda d: d["episodes"][0].update(artefact_digest=artefact_digest(copy / "artefacts" / first)))
    reasons = verify_submission(copy, "docker")
    assert reasons and all(r.startswith("submission.json: $.episodes[0].") for r in reasons), reasons
    assert any(".score: 0.878 claimed, the re-grade gives" in r for r in reasons), reasons


# -- a local-backend run: fast, no engine ------------------------------------------------------------
@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("local-runs")
    proc = ctxeval("run", "toy", "--agent", "oracle", "--seeds", "2", "--backend", "local", "--run-id", "oracle",
                   "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return runs


def test_local_backend_submit_and_tampered_success(oracle_run, tmp_path):
    board = tmp_path / "board"
    proc = ctxeval("submit", "oracle", "--runs-dir", str(oracle_run), "--backend", "local",
                   "--leaderboard", str(board), "--out", str(tmp_path / "sub"))
    assert proc.returncode == 0, proc.stderr
    [row] = leaderboard_table(board)
    assert (row.model, row.policy, row.mode, row.n) == ("oracle", "-", "fixed", 2)

    # a failure claimed as a success (totals kept consistent): only the bundle's rule on the re-grade says no
    tampered = tmp_path / "tampered"
    shutil.copytree(tmp_path / "sub", tampered)
    edit(tampered, lambda d: (d["episodes"][0].update(score=0.5, success=False),
                              d.update(totals=compute_totals(d["episodes"]))))
    reasons = verify_submission(tampered, "local")
    assert any("$.episodes[0].score: 0.5 claimed" in r for r in reasons), reasons
    assert any("$.episodes[0].success: False claimed, the re-grade gives True" in r for r in reasons), reasons

    # a symlink out of the artefacts (a grader following it could read anything) is refused unread
    escape = tmp_path / "escape"
    shutil.copytree(tmp_path / "sub", escape)
    first = json.loads((escape / SUBMISSION_FILE).read_text())["episodes"][0]["episode_id"]
    os.symlink("/etc/hostname", escape / "artefacts" / first / "answers.csv")
    edit(escape, lambda d: d["episodes"][0].update(artefact_digest=artefact_digest(escape / "artefacts" / first)))
    reasons = verify_submission(escape, "local")
    assert reasons == [f"artefacts/{first}: symlinks leave the folder: answers.csv"]

    # an accepted-only store: nothing was added by the rejected verifications
    assert len(leaderboard_table(board)) == 1
    result = ctxeval("submit", "--folder", str(tampered), "--backend", "local", "--leaderboard", str(board))
    assert result.returncode == 1 and "rejected" in result.stderr and "$.episodes[0].success" in result.stderr
    assert len(leaderboard_table(board)) == 1


def test_ranking_direction_ties_and_medals(oracle_run, tmp_path, monkeypatch):
    """leaderboard_table on stored entries (no verification involved): the bundle's direction orders
    the rows, equal means share a rank, medals are counted from the episodes."""
    source, _ = write_submission(oracle_run / "oracle", tmp_path / "sub")
    base = json.loads((source / SUBMISSION_FILE).read_text())

    def store(name: str, scores: list[float], medals: list[str | None], direction: str = "minimize") -> None:
        document = json.loads(json.dumps(base))
        document["model"] = name
        document["bundles"][0]["direction"] = direction
        for episode, score, medal in zip(document["episodes"], scores, medals):
            episode.update(score=score, medal=medal)
        document["totals"] = compute_totals(document["episodes"])
        folder = tmp_path / "staged" / name
        shutil.copytree(source, folder)
        (folder / SUBMISSION_FILE).write_text(json.dumps(document))
        accept_submission(folder)  # into $CTXEVAL_LEADERBOARD_DIR

    monkeypatch.setenv(LEADERBOARD_ENV, str(tmp_path / "env-board"))
    assert leaderboard_dir() == tmp_path / "env-board"
    store("worse", [0.30, 0.10], ["none", "bronze"])
    store("best", [0.05, 0.07], ["gold", "above_median"])
    store("tied", [0.20, 0.20], [None, None])
    store("last", [0.90, 0.95], [None, None])
    rows = leaderboard_table()
    assert [r.model for r in rows][0] == "best" and [r.model for r in rows][3] == "last"
    ranks = {r.model: r.rank for r in rows}
    assert ranks == {"best": 1, "worse": 2, "tied": 2, "last": 4}
    medals = {r.model: r.medals for r in rows}
    assert medals["best"] == {"gold": 1, "silver": 0, "bronze": 0, "above_median": 1}
    assert medals["worse"] == {"gold": 0, "silver": 0, "bronze": 1, "above_median": 0}
    assert medals["tied"] == {}
    # the same scores under "maximize" turn the order around
    for name in ("best", "worse", "tied", "last"):
        shutil.rmtree(tmp_path / "staged" / name)
    monkeypatch.setenv(LEADERBOARD_ENV, str(tmp_path / "max-board"))
    store("best", [0.05, 0.07], [None, None], "maximize")
    store("last", [0.90, 0.95], [None, None], "maximize")
    assert [r.model for r in leaderboard_table()] == ["last", "best"]
    assert leaderboard_table(bundle="nomad") == []
