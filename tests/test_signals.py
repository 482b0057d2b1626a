"""No sandbox outlives its run (issue 19): a stopped run removes its sandboxes, records itself as
interrupted and resumes; a killed driver's sandboxes end themselves; `ctxeval clean` finds what an
engine could not end, and `ctxeval run` says when the engine holds leftovers of other runs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from evaluator.sandbox.docker import LABEL_DEADLINE, LABEL_MANAGED, LABEL_RUN

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CLI = [sys.executable, "-m", "evaluator"]
LEFT_WITHIN_SECONDS = 10
KILLED_WITHIN_SECONDS = 40  # a deadline is over two minutes away: this still proves the hang-up ends them


def containers(client, run_id: str) -> list[dict]:
    """The engine's list, not inspected one by one (sandboxes remove themselves at any moment)."""
    return client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})


def wait_for_containers(client, run_id: str, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([c for c in containers(client, run_id) if c["Labels"].get("ctxeval.role") == "agent"]) >= count:
            return
        time.sleep(0.2)
    pytest.fail(f"no {count} agent sandboxes of {run_id} came up")


def start_run(tmp_path: Path, run_id: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(CLI + ["run", "toy", "--seeds", "3", "--max-parallel", "2", "--run-id", run_id,
                                   "--runs-dir", str(tmp_path), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            cwd=Path(__file__).resolve().parents[1], env={**os.environ, "COLUMNS": "200"})


def gone_within(client, run_id: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not containers(client, run_id):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_sweep_leaves_nothing_and_resumes(tmp_path, toy_image, signum, code):
    client = docker.from_env()
    run_id = f"sig-{signum}-{os.getpid()}"
    proc = start_run(tmp_path, run_id)
    wait_for_containers(client, run_id, 2)
    time.sleep(2)
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err.decode()[-2000:]
    assert f"ctxeval run --resume {run_id}" in err.decode()
    assert gone_within(client, run_id, LEFT_WITHIN_SECONDS), [c["Names"] for c in containers(client, run_id)]
    assert not client.volumes.list(filters={"label": f"{LABEL_RUN}={run_id}"})
    record = json.loads((tmp_path / run_id / "run.json").read_text())
    assert record["status"] == "interrupted"
    assert record["attempts"][-1]["outcome"] == "interrupted"
    assert record["attempts"][-1]["signal"] == signal.Signals(signum).name
    episodes = tmp_path / run_id / "episodes"
    finished = {p.name for p in episodes.iterdir() if (p / "result.json").exists()} if episodes.exists() else set()
    torn = [p for p in episodes.iterdir() if not (p / "result.json").exists()] if episodes.exists() else []
    assert torn == []  # set aside under aborted/, as a resume would
    assert len(finished) < 3

    resumed = subprocess.run(CLI + ["run", "--resume", run_id, "--runs-dir", str(tmp_path)], capture_output=True,
                             text=True, timeout=900, stdin=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    results = [json.loads((p / "result.json").read_text()) for p in sorted(episodes.iterdir())]
    assert sorted(r["seed"] for r in results) == [0, 1, 2]  # every episode exactly once
    assert all(r["status"] == "completed" for r in results)
    assert json.loads((tmp_path / run_id / "run.json").read_text())["status"] == "finished"
    assert not containers(client, run_id)


def test_a_second_signal_exits_at_once_and_still_leaves_nothing(tmp_path, toy_image):
    client = docker.from_env()
    run_id = f"sig-twice-{os.getpid()}"
    proc = start_run(tmp_path, run_id)
    wait_for_containers(client, run_id, 2)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    proc.communicate(timeout=60)
    assert proc.returncode == 143 and time.monotonic() - started < 10
    assert gone_within(client, run_id, LEFT_WITHIN_SECONDS), [c["Names"] for c in containers(client, run_id)]


def test_a_killed_driver_takes_its_sandboxes_with_it(tmp_path, toy_image):
    client = docker.from_env()
    run_id = f"sig-kill-{os.getpid()}"
    proc = start_run(tmp_path, run_id, "--wall-seconds", "120")
    wait_for_containers(client, run_id, 2)
    deadlines = [float(c["Labels"][LABEL_DEADLINE]) for c in containers(client, run_id)]
    proc.kill()
    proc.communicate(timeout=30)
    killed_at = time.time()
    assert all(d > killed_at + KILLED_WITHIN_SECONDS + 30 for d in deadlines)
    # gone long before their deadline (they see the driver hang up), without any other command; the
    # engine's own removal (container, then volume) can take a while on a loaded two-core machine
    assert gone_within(client, run_id, KILLED_WITHIN_SECONDS), [c["Names"] for c in containers(client, run_id)]
    assert not client.volumes.list(filters={"label": f"{LABEL_RUN}={run_id}"})


def test_clean_expired_removes_only_what_is_past_its_deadline_and_run_warns(tmp_path, toy_image):
    client = docker.from_env()
    now = time.time()
    made = []
    for name, deadline in (("late", now - 60), ("live", now + 3600)):
        made.append(client.containers.run(toy_image.tag, ["sleep", "600"], detach=True, network_mode="none",
                                          labels={LABEL_MANAGED: "1", LABEL_RUN: f"pytest-other-{name}",
                                                  LABEL_DEADLINE: f"{deadline:.0f}"}))
    try:
        made[0].pause()  # a frozen sandbox cannot end itself: only `clean` can
        warned = subprocess.run(CLI + ["run", "toy", "--agent", "noop", "--runs-dir", str(tmp_path)],
                                capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                                cwd=Path(__file__).resolve().parents[1], env={**os.environ, "COLUMNS": "300"})
        assert warned.returncode == 0, warned.stderr[-2000:]
        assert "ctxeval container(s) of other runs" in warned.stderr and "1 past their deadline" in warned.stderr
        cleaned = subprocess.run(CLI + ["clean", "--expired"], capture_output=True, text=True, timeout=120,
                                 cwd=Path(__file__).resolve().parents[1])
        assert cleaned.returncode == 0, cleaned.stderr
        assert "(1 past their deadline)" in cleaned.stdout
        names = {c.name for c in client.containers.list(all=True)}
        assert made[0].name not in names and made[1].name in names
    finally:
        for container in made:
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass


def test_a_sandbox_is_frozen_only_while_its_workspace_is_copied(docker_sandbox, docker_client, tmp_path):
    """Frozen while the engine reads the workspace, running again once it is copied: a driver killed
    during grading leaves a PID 1 that sees it hang up, not a paused container nobody ends."""
    sandbox = docker_sandbox()
    sandbox.exec("echo copied > a.txt")
    sandbox.copy_out(tmp_path / "ws")
    assert (tmp_path / "ws" / "a.txt").read_text() == "copied\n"
    assert docker_client.api.inspect_container(sandbox.container.id)["State"]["Status"] == "running"
    assert any(e.get("event") == "quiesce" and e["outcome"] == "ok" for e in sandbox.events)
    assert sandbox.exec("cat a.txt").stdout == "copied\n"  # usable again, the workspace as it was
