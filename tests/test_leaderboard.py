"""`ctxeval submit` / `ctxeval leaderboard`: an honest submission is accepted and ranked with the
right statistics; every kind of tampering is rejected with its reason, down to tampering that
only a fresh re-grade of the artefacts can catch; an arm's bad seeds cannot be left out (the
submission carries run.json, whose matrix lists every episode of the arm), an unfinished arm
cannot be submitted, and fewer than MIN_SEEDS seeds are never ranked."""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator.analysis.leaderboard import LEADERBOARD_ENV, accept_submission, leaderboard_dir, leaderboard_table
from evaluator.analysis.loading import load_run
from evaluator.analysis.submission import (MIN_SEEDS, SUBMISSION_FILE, SubmissionArm, artefact_digest,
                                           build_submission, compute_totals, write_submission)
from evaluator.errors import CtxevalError
from evaluator.paths import PROJECT_ROOT
from evaluator.regrade import verify_submission

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


# -- a real docker run: two arms (two policies) x MIN_SEEDS seeds ----------------------------------------
@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, toy_image):
    runs = tmp_path_factory.mktemp("runs")
    proc = ctxeval("run", "toy", "--seeds", str(MIN_SEEDS), "--policy", "full_history", "--policy", "short_context",
                   "--backend", "docker", "--max-parallel", "2", "--run-id", "lb", "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = load_run(runs / "lb")
    assert len(run.results) == 2 * MIN_SEEDS and not run.invalid
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
    assert (entry / "run.json").read_bytes() == (runs / "lb" / "run.json").read_bytes()
    for episode in document["episodes"]:
        assert artefact_digest(entry / "artefacts" / episode["episode_id"]) == episode["artefact_digest"]
    assert not (PROJECT_ROOT / "leaderboard" / entry.name).exists()

    listing = ctxeval("leaderboard", "--dir", str(board), "--json")
    assert listing.returncode == 0, listing.stderr
    [row] = json.loads(listing.stdout)
    mine = [r for r in run.results if r["agent"]["policy"]["name"] == "full_history"]
    successes = sum(r["success"] for r in mine)
    assert (row["bundle"], row["n"], row["successes"], row["rank"]) == ("toy", MIN_SEEDS, successes, 1)
    low, high = wilson(successes, MIN_SEEDS)
    assert row["success_rate"]["estimate"] == successes / MIN_SEEDS
    assert row["success_rate"]["low"] == pytest.approx(low, abs=1e-9)
    assert row["success_rate"]["high"] == pytest.approx(high, abs=1e-9)
    scores = [r["score"] for r in mine]
    assert row["mean_score"]["estimate"] == pytest.approx(sum(scores) / MIN_SEEDS, abs=1e-12)
    assert row["mean_score"]["low"] <= row["mean_score"]["estimate"] <= row["mean_score"]["high"]
    assert row["mean_tokens"] == pytest.approx(sum(r["metrics"]["prompt_tokens"] + r["metrics"]["completion_tokens"]
                                                   + r["metrics"]["summarizer_tokens"] for r in mine) / MIN_SEEDS)
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
    assert document["policy"] == "short_context" and len(document["episodes"]) == MIN_SEEDS
    assert {e["seed"] for e in document["episodes"]} == set(range(MIN_SEEDS))


@pytest.mark.docker
def test_another_arms_episode_in_place_of_one_of_this_arm_is_rejected(copy, toy_run):
    _, run = toy_run
    [other] = [r["episode_id"] for r in run.results if r["agent"]["policy"]["name"] == OTHER.policy and r["seed"] == 0]
    mine = json.loads((copy / SUBMISSION_FILE).read_text())["episodes"][0]["episode_id"]
    edit(copy, lambda d: d["episodes"][0].update(episode_id=other))
    (copy / "artefacts" / mine).rename(copy / "artefacts" / other)
    reasons = verify_submission(copy, "docker", regrade=False)
    assert reasons == [f"submission.json: $.episodes[0].episode_id: {other!r} is another arm's episode in run.json, "
                       "not one of this arm's",
                       f"submission.json: $.episodes: 1 of the {MIN_SEEDS} episodes run.json gives this arm are "
                       f"missing: {mine}"], reasons


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
    assert len(reasons) == MIN_SEEDS, reasons
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
ORACLE_SEEDS = MIN_SEEDS + 1  # one seed left out still leaves MIN_SEEDS: the missing episode is the only fault
LAST = ORACLE_SEEDS - 1


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("local-runs")
    proc = ctxeval("run", "toy", "--agent", "oracle", "--seeds", str(ORACLE_SEEDS), "--backend", "local",
                   "--run-id", "oracle", "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return runs


@pytest.fixture(scope="module")
def oracle_submission(oracle_run, tmp_path_factory):
    folder, _ = write_submission(oracle_run / "oracle", tmp_path_factory.mktemp("oracle-sub") / "sub")
    assert verify_submission(folder, "local", regrade=False) == []
    return folder


@pytest.fixture
def oracle_copy(oracle_submission, tmp_path):
    """A fresh copy of the honest oracle submission to tamper with."""
    target = tmp_path / "tampered"
    shutil.copytree(oracle_submission, target, symlinks=True)
    return target


def drop_seeds(folder: Path, seeds: set[int]) -> list[str]:
    """Leave the episodes of `seeds` out of a submission, consistently: artefacts, seeds and totals."""
    dropped: list[str] = []

    def change(document):
        dropped.extend(e["episode_id"] for e in document["episodes"] if e["seed"] in seeds)
        kept = [e for e in document["episodes"] if e["seed"] not in seeds]
        document.update(episodes=kept, seeds=sorted({e["seed"] for e in kept}), totals=compute_totals(kept))
    edit(folder, change)
    for episode_id in dropped:
        shutil.rmtree(folder / "artefacts" / episode_id)
    return dropped


def edit_run_json(folder: Path, change, rehash: bool) -> None:
    """Edit the submission's run.json; `rehash`: and put its new sha256 in submission.json."""
    path = folder / "run.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=2))
    if rehash:
        edit(folder, lambda d: d.update(run_json_sha256=hashlib.sha256(path.read_bytes()).hexdigest()))


def keep_seeds(record: dict, seeds: set[int]) -> None:
    """run.json's matrix and episode ids cut down to `seeds`, consistently."""
    record["matrix"]["seeds"] = [s for s in record["matrix"]["seeds"] if s in seeds]
    record["episodes"] = [e for e in record["episodes"] if int(e.rsplit("-s", 1)[1]) in seeds]


def test_local_backend_submit_and_tampered_success(oracle_run, tmp_path):
    board = tmp_path / "board"
    proc = ctxeval("submit", "oracle", "--runs-dir", str(oracle_run), "--backend", "local",
                   "--leaderboard", str(board), "--out", str(tmp_path / "sub"))
    assert proc.returncode == 0, proc.stderr
    [row] = leaderboard_table(board)
    assert (row.model, row.policy, row.mode, row.n) == ("oracle", "-", "fixed", ORACLE_SEEDS)
    [entry] = [p for p in board.iterdir() if not p.name.startswith(".")]
    assert (entry / "run.json").read_bytes() == (oracle_run / "oracle" / "run.json").read_bytes()

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


def test_a_submission_leaving_out_a_seed_is_rejected_naming_the_episode(oracle_copy, tmp_path):
    [dropped] = drop_seeds(oracle_copy, {LAST})  # totals, seeds and artefacts all agree with what is left
    assert dropped == f"toy-oracle-s{LAST}"
    reasons = verify_submission(oracle_copy, "local")
    assert reasons == [f"submission.json: $.episodes: 1 of the {ORACLE_SEEDS} episodes run.json gives "
                       f"this arm are missing: {dropped}"], reasons
    board = tmp_path / "board"
    proc = ctxeval("submit", "--folder", str(oracle_copy), "--backend", "local", "--leaderboard", str(board))
    assert proc.returncode == 1 and "rejected" in proc.stderr and dropped in proc.stderr, proc.stderr
    assert leaderboard_table(board) == []


def test_an_episode_outside_the_matrix_or_twice_is_rejected(oracle_copy):
    def change(document):
        episodes = document["episodes"]
        episodes.append(dict(episodes[0], episode_id="toy-oracle-s9", seed=9))  # a seed the run never had
        episodes.append(dict(episodes[1]))
        document.update(seeds=sorted({e["seed"] for e in episodes}), totals=compute_totals(episodes))
    edit(oracle_copy, change)
    shutil.copytree(oracle_copy / "artefacts" / "toy-oracle-s0", oracle_copy / "artefacts" / "toy-oracle-s9")
    reasons = verify_submission(oracle_copy, "local", regrade=False)
    assert f"submission.json: $.episodes[{ORACLE_SEEDS}].episode_id: 'toy-oracle-s9' is not an episode run.json " \
           "lists, not one of this arm's" in reasons, reasons
    assert any(f"$.episodes[{ORACLE_SEEDS + 1}].episode_id: 'toy-oracle-s1' appears twice" in r for r in reasons)


def test_an_edited_run_json_is_rejected(oracle_copy):
    drop_seeds(oracle_copy, {LAST})
    original = (oracle_copy / "run.json").read_bytes()
    shrunk = set(range(LAST))

    # the matrix cut down to the seeds left, its sha256 in submission.json not updated
    edit_run_json(oracle_copy, lambda r: keep_seeds(r, shrunk), rehash=False)
    [reason] = verify_submission(oracle_copy, "local", regrade=False)
    assert reason.startswith("submission.json: $.run_json_sha256: ") and "does not match run.json" in reason

    # the sha256 updated too, but the episode ids still list the seed left out
    (oracle_copy / "run.json").write_bytes(original)
    edit_run_json(oracle_copy, lambda r: r["matrix"].update(seeds=sorted(shrunk)), rehash=True)
    assert verify_submission(oracle_copy, "local", regrade=False) == [
        f"run.json: $.episodes: {ORACLE_SEEDS} episode ids, but the layout has 1 bundle(s) × 1 agent(s) × {LAST} "
        f"seed(s) ($.matrix.seeds) = {LAST} episodes"]

    # the seed renamed in the matrix only: the episode id it lays out there says another seed
    (oracle_copy / "run.json").write_bytes(original)
    edit_run_json(oracle_copy, lambda r: r["matrix"]["seeds"].__setitem__(LAST, 99), rehash=True)
    assert verify_submission(oracle_copy, "local", regrade=False) == [
        f"run.json: $.episodes[{LAST}]: 'toy-oracle-s{LAST}' is not an episode with seed 99, which the layout puts "
        f"there ($.matrix.seeds[{LAST}])"]

    # another run's run.json
    (oracle_copy / "run.json").write_bytes(original)
    edit_run_json(oracle_copy, lambda r: r.update(run_id="another"), rehash=True)
    reasons = verify_submission(oracle_copy, "local", regrade=False)
    assert "submission.json: $.source_run_id: 'oracle', but run.json is of run 'another'" in reasons, reasons

    # the limit (README): run.json rewritten whole and consistently, sha256 included, cannot be told from a
    # run that had only these seeds; MIN_SEEDS is what still holds (test_fewer_than_min_seeds_...)
    (oracle_copy / "run.json").write_bytes(original)
    edit_run_json(oracle_copy, lambda r: keep_seeds(r, shrunk), rehash=True)
    assert verify_submission(oracle_copy, "local", regrade=False) == []


def test_fewer_than_min_seeds_are_refused_and_never_ranked(oracle_copy, tmp_path):
    # a genuine two-seed run: `ctxeval submit` refuses it before building anything
    runs, board = tmp_path / "runs", tmp_path / "board"
    proc = ctxeval("run", "toy", "--agent", "oracle", "--seeds", "2", "--backend", "local", "--run-id", "two",
                   "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = ctxeval("submit", "two", "--runs-dir", str(runs), "--backend", "local", "--leaderboard", str(board))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"at least {MIN_SEEDS} seeds per bundle" in proc.stderr and "bundle toy: 2 (seeds 0, 1)" in proc.stderr
    assert not board.exists() and not list(runs.glob("two/submission-*"))
    with pytest.raises(CtxevalError, match="too few seeds"):
        build_submission(runs / "two")

    # two seeds made consistent by hand (run.json rewritten, sha256 recomputed): verification refuses them
    drop_seeds(oracle_copy, set(range(2, ORACLE_SEEDS)))
    edit_run_json(oracle_copy, lambda r: keep_seeds(r, {0, 1}), rehash=True)
    assert verify_submission(oracle_copy, "local", regrade=False) == [
        f"submission.json: $.episodes: bundle 'toy' has 2 seed(s) (0, 1); the leaderboard ranks an arm only with at "
        f"least {MIN_SEEDS} seeds per bundle (MIN_SEEDS)"]

    # stored anyway (accept_submission does not verify): never ranked, and the listing says why
    accept_submission(oracle_copy, board)
    assert leaderboard_table(board) == []
    listing = ctxeval("leaderboard", "--dir", str(board))
    assert listing.returncode == 0 and "no accepted submissions" in listing.stdout
    assert "not ranked" in listing.stderr and "bundle 'toy' has 2 seed(s)" in listing.stderr


def test_an_unfinished_arm_cannot_be_submitted(oracle_run, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(oracle_run / "oracle", runs / "oracle", symlinks=True)
    (runs / "oracle" / "episodes" / "toy-oracle-s1" / "result.json").unlink()
    errored = runs / "oracle" / "episodes" / "toy-oracle-s2" / "result.json"
    result = json.loads(errored.read_text())
    result.update(status="error", success=False, error="sandbox_died: the container went away")
    errored.write_text(json.dumps(result))
    assert not load_run(runs / "oracle").invalid

    with pytest.raises(CtxevalError) as info:
        write_submission(runs / "oracle", tmp_path / "sub")
    message = str(info.value)
    assert "is not finished" in message and "1 without a result (toy-oracle-s1)" in message, message
    assert "1 in status error (toy-oracle-s2)" in message and "`ctxeval run --resume oracle`" in message, message
    assert not (tmp_path / "sub").exists()
    board = tmp_path / "board"
    proc = ctxeval("submit", "oracle", "--runs-dir", str(runs), "--backend", "local", "--leaderboard", str(board))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "toy-oracle-s1" in proc.stderr
    assert not board.exists()

    # what the message says to do works: the resume runs the two again, then the arm is submitted
    resumed = ctxeval("run", "--resume", "oracle", "--runs-dir", str(runs))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    proc = ctxeval("submit", "oracle", "--runs-dir", str(runs), "--backend", "local", "--leaderboard", str(board))
    assert proc.returncode == 0 and "accepted:" in proc.stdout, proc.stderr


def test_a_library_run_is_held_to_its_seeds(tmp_path):
    """execute(RunPlan) writes `agent` and `seeds` instead of a matrix: the same checks hold."""
    from evaluator.agents.fixed import NoopAgent
    from evaluator.bundles import load_bundle
    from evaluator.paths import BUNDLES_DIR
    from evaluator.runs import RunPlan, execute
    plan = RunPlan(load_bundle(BUNDLES_DIR / "toy"), NoopAgent(), seeds=[3, 5, 8, 13], backend="local", run_id="lib",
                   root=tmp_path / "runs")
    execute(plan, None, None)
    folder, document = write_submission(plan.run_dir, tmp_path / "sub")
    assert document["seeds"] == [3, 5, 8, 13] and verify_submission(folder, "local", regrade=False) == []
    drop_seeds(folder, {5})
    assert verify_submission(folder, "local", regrade=False) == [
        "submission.json: $.episodes: 1 of the 4 episodes run.json gives this arm are missing: "
        "toy-noop-s5"]
    (plan.run_dir / "episodes" / "toy-noop-s8" / "result.json").unlink()
    with pytest.raises(CtxevalError, match=r"toy-noop-s8.*execute\(\) the same RunPlan again \(run_id='lib'\)"):
        build_submission(plan.run_dir)


def test_an_older_submission_format_is_refused_with_its_reason(oracle_copy, tmp_path):
    edit(oracle_copy, lambda d: (d.update(schema_version=1), d.pop("run_json_sha256")))
    (oracle_copy / "run.json").unlink()
    [reason] = verify_submission(oracle_copy, "local", regrade=False)
    assert reason.startswith("submission.json: $.schema_version: 1 is an older submission format") \
        and "`ctxeval submit RUN`" in reason, reason
    board = tmp_path / "board"
    shutil.copytree(oracle_copy, board / "old-entry")  # stored by an older ctxeval
    assert leaderboard_table(board) == []
    listing = ctxeval("leaderboard", "--dir", str(board))
    assert "skipped old-entry: submission.json: $.schema_version: 1 is an older" in listing.stderr, listing.stderr


def test_ranking_direction_ties_and_medals(oracle_submission, tmp_path, monkeypatch):
    """leaderboard_table on stored entries (no verification involved): the bundle's direction orders
    the rows, equal means share a rank, medals are counted from the episodes."""
    source = oracle_submission
    base = json.loads((source / SUBMISSION_FILE).read_text())

    def store(name: str, scores: list[float], medals: list[str | None], direction: str = "minimize") -> None:
        document = json.loads(json.dumps(base))
        document["model"] = name
        document["bundles"][0]["direction"] = direction
        for episode, score, medal in zip(document["episodes"], scores, medals, strict=True):
            episode.update(score=score, medal=medal)
        document["totals"] = compute_totals(document["episodes"])
        folder = tmp_path / "staged" / name
        shutil.copytree(source, folder)
        (folder / SUBMISSION_FILE).write_text(json.dumps(document))
        accept_submission(folder)  # into $CTXEVAL_LEADERBOARD_DIR

    monkeypatch.setenv(LEADERBOARD_ENV, str(tmp_path / "env-board"))
    assert leaderboard_dir() == tmp_path / "env-board"
    assert ORACLE_SEEDS == 4  # the score lists below
    store("worse", [0.30, 0.10, 0.20, 0.20], ["none", "bronze", None, None])
    store("best", [0.05, 0.07, 0.06, 0.06], ["gold", "above_median", None, None])
    store("tied", [0.20, 0.20, 0.20, 0.20], [None] * 4)
    store("last", [0.90, 0.95, 0.90, 0.95], [None] * 4)
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
    store("best", [0.05, 0.07, 0.06, 0.06], [None] * 4, "maximize")
    store("last", [0.90, 0.95, 0.90, 0.95], [None] * 4, "maximize")
    assert [r.model for r in leaderboard_table()] == ["last", "best"]
    assert leaderboard_table(bundle="nomad") == []


def test_probe_recall_is_submitted_verified_for_consistency_and_shown(oracle_run, oracle_submission, tmp_path):
    """Results with probes still submit and verify; the entry shows its mean per-episode probe recall
    (a column only when an entry has it); a probe claim that does not add up is rejected."""
    runs = tmp_path / "runs"
    shutil.copytree(oracle_run / "oracle", runs / "oracle", symlinks=True)
    recalled = {0: (2, 2), 1: (1, 2), 2: (0, 1), 3: None}  # seed: (correct, answered); 3: nothing answered
    for seed, counts in recalled.items():
        path = runs / "oracle" / "episodes" / f"toy-oracle-s{seed}" / "result.json"
        result = json.loads(path.read_text())
        correct, answered = counts or (0, 0)
        records = [{"id": "leak", "decisive": True, "planted_call": 1, "asked_call": 2 + i, "distance": 1 + i,
                    "status": "answered", "fact_in_context": i < correct, "answer": "f23" if i < correct else "?",
                    "correct": i < correct, "prompt_tokens": 30, "completion_tokens": 2, "cost_usd": 0.0}
                   for i in range(answered)]
        records.append({"id": "late", "decisive": False, "planted_call": None, "asked_call": 9, "distance": None,
                        "status": "not_planted", "fact_in_context": None, "answer": None, "correct": None,
                        "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0})
        result.update(probes=records, probe_recall=None)
        path.write_text(json.dumps(result))
    assert not load_run(runs / "oracle").invalid
    folder, document = write_submission(runs / "oracle", tmp_path / "sub")
    claims = {e["seed"]: e["probe_recall"] for e in document["episodes"]}
    assert claims[0] == {"overall": 1.0, "answered": 2, "correct": 2}
    assert claims[1]["overall"] == 0.5 and claims[2]["overall"] == 0.0
    assert claims[3] == {"overall": None, "answered": 0, "correct": 0}
    assert verify_submission(folder, "local") == []  # re-graded: the probes change nothing of the grade

    board = tmp_path / "board"
    accept_submission(folder, board)
    accept_submission(oracle_submission, board)  # the same arm without probes
    rows = leaderboard_table(board)
    assert len(rows) == 2
    [probed] = [r for r in rows if r.probe_recall is not None]
    [plain] = [r for r in rows if r.probe_recall is None]
    assert probed.probe_recall.estimate == pytest.approx((1.0 + 0.5 + 0.0) / 3)  # seed 3 answered nothing
    assert probed.probe_recall.low <= probed.probe_recall.estimate <= probed.probe_recall.high
    assert plain.as_record()["probe_recall"] is None
    listing = ctxeval("leaderboard", "--dir", str(board))
    assert listing.returncode == 0 and "probe recall" in listing.stdout and "0.5" in listing.stdout, listing.stdout
    alone = tmp_path / "plain-board"
    accept_submission(oracle_submission, alone)
    assert "probe recall" not in ctxeval("leaderboard", "--dir", str(alone)).stdout

    for change, why in ((lambda e: e["probe_recall"].update(overall=0.9), "$.episodes[1].probe_recall.overall"),
                        (lambda e: e["probe_recall"].update(correct=3), "$.episodes[1].probe_recall.correct")):
        tampered = tmp_path / f"tampered-{why[-7:]}"
        shutil.copytree(folder, tampered)
        edit(tampered, lambda d: change(d["episodes"][1]))
        reasons = verify_submission(tampered, "local", regrade=False)
        assert any(why in r for r in reasons), reasons
