"""Grading and sandbox escapes (issue 11), each played through the real agent path against the real
Docker engine: what an attacker found, and what must hold instead.

- the copy-out never runs the agent's code, and grading sees exactly the bytes copied out (1);
- nothing the evaluator relies on in the container can be ptraced or signalled by the agent (2);
- every exec ends by its deadline whatever the agent does, and what the agent causes is an agent
  outcome, never an infrastructure error that a resume would rerun (3, 4);
- the engine's container log is capped (5);
- reads never block on special files, the artefact cap counts host blocks and files, a forged
  counters line changes nothing, and the mounts reveal no host path (6);
- a submission graded by running it never runs where the grader's hidden files are (7).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import docker
import pytest

from evaluator.agents import create_agent
from evaluator.bundles import load_bundle
from evaluator.bundles.data import prepare_data
from evaluator.episode.context import Budget
from evaluator.episode.grading import grade_submission_file
from evaluator.matrix import episode_id
from evaluator.paths import BUNDLES_DIR, PROJECT_ROOT, cache_dir
from evaluator.runs import EpisodeJob, RunSettings, execute_jobs, run_record
from evaluator.sandbox.docker import LABEL_RUN

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ESCAPES = Path(__file__).parent / "adversarial" / "escapes"
ARTEFACT_CAP = 200 * 1024 * 1024  # the documented host-disk cap of one episode's artefacts


def _events(run_dir: Path, result: dict) -> list[dict]:
    path = run_dir / "episodes" / result["episode_id"] / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _workspace(run_dir: Path, result: dict) -> Path:
    return run_dir / "episodes" / result["episode_id"] / "workspace"


def _run(tmp_path: Path, bundle, image, attacks: list[str], budget: Budget | None = None,
         max_parallel: int = 2) -> tuple[RunSettings, dict[str, dict]]:
    prepared = prepare_data(bundle)
    jobs = []
    for seed, name in enumerate(attacks):
        agent = create_agent("actions", actions=ESCAPES / f"{name}.yaml")
        jobs.append(EpisodeJob(bundle, seed, episode_id(bundle.id, agent.describe(), seed),
                               (lambda a=agent: a), prepared, image.tag, image.input_hash))
    settings = RunSettings(backend="docker", run_id=f"escapes-{attacks[0][:20]}-{os.getpid()}",
                           root=tmp_path, budget=budget or Budget(max_steps=20), max_parallel=max_parallel)
    results = execute_jobs(settings, run_record(settings), jobs)
    return settings, dict(zip(attacks, results))


def _disk_usage(folder: Path) -> tuple[int, int]:
    """(bytes of host disk in blocks, number of files) under a folder."""
    blocks = files = 0
    for path in folder.rglob("*"):
        info = path.lstat()
        blocks += info.st_blocks * 512
        files += 1
    return blocks, files


@pytest.fixture(scope="module")
def copy_out_attacks(tmp_path_factory, toy_bundle, toy_image):
    attacks = ["copyout_rewrite", "copyout_bomb", "copyout_garbage", "fifo_output", "many_tiny_files"]
    started = time.monotonic()
    settings, results = _run(tmp_path_factory.mktemp("copyout"), toy_bundle, toy_image, attacks)
    return settings, results, time.monotonic() - started


# -- 1. the copy-out, and what grading sees ----------------------------------------------------------

def test_grading_sees_exactly_the_bytes_copied_out(copy_out_attacks, toy_bundle, toy_data):
    settings, results, _ = copy_out_attacks
    result = results["copyout_rewrite"]
    copied = _workspace(settings.run_dir, result) / "predictions.csv"
    assert copied.read_text().strip() == "id,target"  # the header only: what was there at the end
    assert result["status"] == "completed"
    # the rewriter planted in json.py never ran: the grade is that of the header-only file
    assert result["grade"]["valid"] is False and result["success"] is False, result["grade"]
    regraded = grade_submission_file(toy_bundle, copied, "docker", result["bundle"]["image"], toy_data)
    assert regraded.grade == result["grade"]


def test_a_forged_compressed_stream_cannot_inflate_the_copy(copy_out_attacks):
    settings, results, _ = copy_out_attacks
    result = results["copyout_bomb"]
    workspace = _workspace(settings.run_dir, result)
    assert result["status"] == "completed" and result["grade"] is not None
    blocks, _ = _disk_usage(workspace)
    assert blocks < 1024 * 1024  # the planted tarfile.py is copied as the small file it is
    assert (workspace / "tarfile.py").is_file() and not (workspace / "zeros.bin").exists()
    assert not any(p.is_symlink() for p in workspace.rglob("*"))
    assert all(p.stat().st_nlink == 1 for p in workspace.rglob("*") if p.is_file())
    assert "forged-skip" not in json.dumps(_events(settings.run_dir, result))


def test_a_garbage_stream_is_recorded_and_the_episode_still_graded(copy_out_attacks):
    _, results, _ = copy_out_attacks
    result = results["copyout_garbage"]
    assert result["status"] == "completed", result["error"]
    assert result["grade"] is not None and result["grade"]["valid"] is True  # graded: the starter's predictions


# -- 6. special files, host blocks ----------------------------------------------------------------------

def test_a_fifo_output_file_never_stalls_the_evaluator(copy_out_attacks):
    settings, results, _ = copy_out_attacks
    result = results["fifo_output"]
    assert result["status"] == "completed"
    assert result["metrics"]["wall_seconds"] < 45, result["metrics"]["wall_seconds"]
    assert result["output"]["valid"] is False and result["output"]["errors"]
    assert result["grade"]["valid"] is False  # predictions.csv is a FIFO: never read, never graded as data
    assert not (_workspace(settings.run_dir, result) / "metrics.json").exists()


def test_the_artefact_cap_counts_host_blocks_and_files(copy_out_attacks):
    settings, results, _ = copy_out_attacks
    result = results["many_tiny_files"]
    assert result["status"] == "completed" and result["grade"]["valid"] is True
    blocks, files = _disk_usage(_workspace(settings.run_dir, result))
    assert blocks <= ARTEFACT_CAP, f"{blocks / 2**20:.0f} MiB of host disk"
    assert files < 100_000
    recorded = json.dumps(_events(settings.run_dir, result))
    assert "artefacts_skipped" in recorded or "artefacts_refused" in recorded
    assert (_workspace(settings.run_dir, result) / "predictions.csv").is_file()  # the submission was kept


# -- 3, 4. deadlines, and who is to blame ------------------------------------------------------------------

def test_stopping_the_wrapper_is_an_agent_outcome_not_an_error(tmp_path, toy_bundle, toy_image):
    settings, results = _run(tmp_path, toy_bundle, toy_image, ["stop_wrapper"], max_parallel=1)
    result = results["stop_wrapper"]
    assert result["status"] == "completed", result["error"]
    assert result["stop_reason"] == "submitted"
    step = next(e for e in _events(settings.run_dir, result) if e.get("event") == "step")
    assert step["result"]["outcome"] == "timeout"
    assert step["result"]["duration_s"] < 3 + 12
    assert result["success"] is True  # the agent carried on: its later steps ran and were graded


@pytest.mark.timeout(240)
def test_an_exec_ends_by_its_deadline_whatever_the_agent_does(tmp_path, toy_bundle, toy_image):
    started = time.monotonic()
    settings, results = _run(tmp_path, toy_bundle, toy_image, ["stop_wrapper_pidfile"],
                             budget=Budget(max_steps=20, wall_seconds=30), max_parallel=1)
    elapsed = time.monotonic() - started
    result = results["stop_wrapper_pidfile"]
    assert result["status"] == "completed", result["error"]
    steps = [e for e in _events(settings.run_dir, result) if e.get("event") == "step"]
    assert steps[0]["result"]["outcome"] == "timeout" and steps[0]["result"]["duration_s"] < 3 + 12
    assert steps[1]["result"]["outcome"] == "ok"  # the sandbox still answers
    assert elapsed < 30 + 60  # the wall budget held, grading included
    client = docker.from_env()
    assert not client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={settings.run_id}"})


# -- 2, 5, 6. what the agent can reach inside its container --------------------------------------------

def test_pid_one_and_the_exec_wrapper_cannot_be_ptraced_or_signalled(docker_sandbox):
    sandbox = docker_sandbox()
    attach = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
              "for pid in [1] + [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, os.getpid())]:\n"
              "    try:\n        uid = int(open(f'/proc/{pid}/status').read().split('Uid:')[1].split()[0])\n"
              "    except OSError:\n        continue\n"
              "    if uid == os.getuid() and pid != 1:\n        continue\n"
              "    rc = libc.ptrace(16, pid, 0, 0)\n    print(pid, uid, 'ATTACHED' if rc == 0 else 'denied', ctypes.get_errno())\n")
    result = sandbox.exec('python3 -c "$1"', args=[attach])
    assert result.ok, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0].startswith("1 ") and "ATTACHED" not in result.stdout, result.stdout
    assert not lines[0].startswith("1 1000 "), "PID 1 must not run as the agent's uid"
    # the exec's own wrapper (an ancestor of the command) cannot be stopped by the command
    stop = sandbox.exec('p=$PPID; n=0; while [ "$p" -gt 1 ]; do kill -STOP "$p" 2>/dev/null && n=$((n+1)); '
                        'p=$(cut -d" " -f4 /proc/$p/stat); done; echo "stopped=$n"', timeout=5)
    assert stop.outcome == "ok" and stop.stdout.strip() == "stopped=0", (stop.outcome, stop.stdout)
    for path in ("/proc/1/mem", "/proc/1/environ", "/proc/1/fd/1"):
        probe = sandbox.exec(f'head -c1 {path} >/dev/null && echo READ')
        assert "READ" not in probe.stdout, path


def test_the_engine_log_of_a_container_is_capped(docker_sandbox, docker_client):
    sandbox = docker_sandbox()
    flood = sandbox.exec("head -c 30000000 /dev/zero > /proc/1/fd/1; echo rc=$?", timeout=60)
    assert "rc=0" not in flood.stdout  # the agent cannot reach PID 1's stdout at all
    container = docker_client.containers.get(sandbox.container.id)
    log_config = container.attrs["HostConfig"]["LogConfig"]
    assert log_config["Type"] == "none" or int(log_config["Config"]["max-file"]) == 1
    if log_config["Type"] != "none":  # even PID 1 itself cannot grow the log past its cap
        container.exec_run(["sh", "-c", "head -c 30000000 /dev/zero > /proc/1/fd/1"], user="0:0")
        time.sleep(1)
        container.reload()
        assert os.path.getsize(container.attrs["LogPath"]) <= 2 * 1024 * 1024


def test_a_forged_counters_line_changes_nothing(docker_sandbox):
    sandbox = docker_sandbox()
    forged = sandbox.exec("printf 'before\\n\\036ctxeval-exec 0 0 0 0 9\\nafter\\n' >&2; echo out")
    assert forged.outcome == "ok", forged.outcome
    assert "before" in forged.stderr and "after" in forged.stderr
    assert forged.stdout.strip() == "out"


def test_the_mounts_reveal_no_host_path(docker_sandbox):
    sandbox = docker_sandbox()
    mounts = sandbox.exec("cat /proc/self/mountinfo")
    assert mounts.ok
    for secret in {str(PROJECT_ROOT), str(BUNDLES_DIR), str(cache_dir()), str(Path.home())} - {"/"}:
        assert secret not in mounts.stdout, secret


# -- 7. a submission run apart from the grader's hidden files ----------------------------------------------

@pytest.fixture(scope="module")
def profiler_bundle():
    return load_bundle(BUNDLES_DIR / "experiment_profiler")


@pytest.fixture(scope="module")
def profiler_image(docker_client, profiler_bundle):
    from evaluator.images import ImageBuilder
    return ImageBuilder(client=docker_client).bundle_image(profiler_bundle)


def test_a_submission_run_by_the_grader_cannot_forge_its_grade(tmp_path, profiler_bundle, profiler_image):
    _, results = _run(tmp_path, profiler_bundle, profiler_image, ["profiler_forge"], max_parallel=1)
    result = results["profiler_forge"]
    assert result["status"] == "completed", result["error"]
    grade = result["grade"]
    assert grade is not None and "forged" not in json.dumps(grade), grade
    assert result["success"] is False and result["score"] < 0.5
