"""The run matrix: one `ctxeval run` sweeps bundles × policies × modes × models × seeds, runs them
concurrently, and a run killed with SIGKILL mid-way resumes to exactly the episodes and summary
of an uninterrupted run."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
from typer.testing import CliRunner

from evaluator.cli import app
from evaluator.paths import PROJECT_ROOT
from evaluator.sandbox.docker import LABEL_RUN

CLI = [sys.executable, "-m", "evaluator"]


def cli(args: list[str], tmp_path: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "CTXEVAL_RUNS_DIR": str(tmp_path)}
    return subprocess.run(CLI + args, capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=timeout)


def results_of(run_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (run_dir / "episodes").glob("*/result.json")}


def test_a_sweep_runs_every_cell_concurrently_and_resume_redoes_nothing(tmp_path):
    proc = cli(["run", "toy", "--backend", "local", "--policy", "short_context", "--policy", "hard_cap_8k",
                "--seeds", "2", "--max-parallel", "2", "--run-id", "sweep"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "sweep"
    results = results_of(run_dir)
    assert sorted(results) == sorted(f"toy-controller-{p}-scripted_hill_climb-s{s}"
                                     for p in ("short_context", "hard_cap_8k") for s in (0, 1))
    assert {(r["agent"]["policy"]["name"], r["seed"]) for r in results.values()} == \
        {(p, s) for p in ("short_context", "hard_cap_8k") for s in (0, 1)}
    record = json.loads((run_dir / "run.json").read_text())
    assert record["max_parallel"] == 2 and record["matrix"]["seeds"] == [0, 1]
    assert [a["policy"] for a in record["matrix"]["agents"]] == ["short_context", "hard_cap_8k"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["episodes"] == 4 and summary["episode_ids"] == sorted(results)
    assert set(summary["arms"]) == {"toy controller scripted:hill_climb short_context",
                                    "toy controller scripted:hill_climb hard_cap_8k"}
    # two episodes overlapped in time: they really ran concurrently
    spans = sorted((r["started_at"], r["finished_at"]) for r in results.values())
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))

    stamps = {eid: (run_dir / "episodes" / eid / "result.json").stat().st_mtime_ns for eid in results}
    again = cli(["run", "--resume", "sweep"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("(finished earlier)") == 4
    assert stamps == {eid: (run_dir / "episodes" / eid / "result.json").stat().st_mtime_ns for eid in results}
    assert len(json.loads((run_dir / "run.json").read_text())["attempts"]) == 2


def test_run_refuses_ambiguous_or_conflicting_requests(tmp_path):
    runner = CliRunner()
    env = {"CTXEVAL_RUNS_DIR": str(tmp_path)}
    missing = runner.invoke(app, ["run", "--resume", "nope", "--backend", "local"], env=env)
    assert missing.exit_code == 2 and "no run to resume" in missing.output and "Traceback" not in missing.output
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "run.json").write_text("{}")
    taken = runner.invoke(app, ["run", "toy", "--backend", "local", "--run-id", "taken"], env=env)
    assert taken.exit_code == 2 and "--resume taken" in taken.output
    mixed = runner.invoke(app, ["run", "toy", "--resume", "taken"], env=env)
    assert mixed.exit_code == 2 and "the run's own matrix" in mixed.output


def test_a_run_file_is_validated_and_names_the_bad_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("bundles: [toy]\nmodes: [controller, telepathic]\nseeds: 0\n")
    result = CliRunner().invoke(app, ["run", "--file", str(bad)], env={"CTXEVAL_RUNS_DIR": str(tmp_path)})
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert str(bad) in result.output and "$.modes[1]" in result.output and "$.seeds" in result.output


def test_a_run_file_sweeps_modes_and_models(tmp_path):
    run_file = tmp_path / "sweep.yaml"
    run_file.write_text("bundles: [toy]\nagent: noop\nseeds: [3]\nbackend: local\nmax_parallel: 1\n")
    proc = cli(["run", "--file", str(run_file), "--run-id", "f"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(results_of(tmp_path / "f")) == ["toy-noop-s3"]


def test_a_second_process_cannot_run_the_same_run(tmp_path):
    run_dir = tmp_path / "locked"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"matrix": {"bundles": ["toy"], "seeds": [0], "agents": [
        {"agent": "noop", "model": None, "policy": "full_history", "mode": "controller", "base_url": None,
         "stop_on_valid_output": False, "actions": None}]}, "backend": "local"}))
    with open(run_dir / "run.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = cli(["run", "--resume", "locked"], tmp_path)
    assert proc.returncode == 2 and "being executed by another process" in proc.stderr
    assert not (run_dir / "episodes").exists()


@pytest.mark.docker
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_summary(tmp_path):
    args = ["run", "toy", "--policy", "short_context", "--seeds", "4", "--max-parallel", "2"]
    env = {**os.environ, "CTXEVAL_RUNS_DIR": str(tmp_path)}
    victim = subprocess.Popen(CLI + args + ["--run-id", "killed"], cwd=PROJECT_ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    run_dir = tmp_path / "killed"
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:  # kill once one episode is done and another is in flight
            done = {p.parent.name for p in (run_dir / "episodes").glob("*/result.json")}
            started = {p.name for p in (run_dir / "episodes").glob("*") if p.is_dir()}
            if done and started - done:
                break
            assert victim.poll() is None, victim.stderr.read().decode()
            time.sleep(0.2)
        else:
            pytest.fail("the run never had a finished and an unfinished episode at once")
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
    interrupted = started - done
    before = results_of(run_dir)
    assert 1 <= len(before) < 4 and interrupted

    resumed = cli(["run", "--resume", "killed"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    after = results_of(run_dir)
    episode_dirs = sorted(p.name for p in (run_dir / "episodes").iterdir())
    assert episode_dirs == sorted(after) and len(after) == 4  # every episode present exactly once
    for eid, result in before.items():  # finished episodes were kept, not redone
        assert after[eid] == result
    aborted = [p.name for p in (run_dir / "aborted").iterdir()]
    assert {name.rsplit("-", 1)[0] for name in aborted} == interrupted  # the torn attempts kept aside
    client = docker.from_env()
    assert not client.containers.list(all=True, filters={"label": f"{LABEL_RUN}=killed"})
    assert not client.volumes.list(filters={"label": f"{LABEL_RUN}=killed"})

    clean = cli(args + ["--run-id", "clean"], tmp_path)
    assert clean.returncode == 0, clean.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary == json.loads((tmp_path / "clean" / "summary.json").read_text())
    assert summary["episodes"] == 4
