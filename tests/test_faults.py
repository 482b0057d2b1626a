"""Faults end in recorded outcomes and resumed runs lose nothing: the model API answering garbage
or cutting its stream, a container dying mid-episode, the evaluator killed at any point of an
episode, and the disk under runs/ filling up."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker
import pytest

from evaluator.agents import create_agent
from evaluator.models import create_model
from evaluator.paths import PROJECT_ROOT
from evaluator.runs import RunPlan, execute
from evaluator.sandbox.docker import LABEL_EPISODE, LABEL_RUN
from fake_llm_server import Reply, fake_llm_server, text  # noqa: F401
from policies.base import Message

CLI = [sys.executable, "-m", "evaluator"]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setenv("CTXEVAL_MAX_RETRIES", "2")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key")


def _model(provider: str, server):
    if provider == "openai":
        return create_model("openai:gpt-4o", base_url=server.openai_base_url)
    return create_model("anthropic:claude-sonnet-4-6", base_url=server.anthropic_base_url)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", ["malformed_json", "truncated_stream"])
def test_a_garbled_reply_is_retried(fake_llm_server, provider, fault):
    bad = Reply(body="{not json at all") if fault == "malformed_json" else Reply(text="a reply cut short", truncate=True)
    fake_llm_server.enqueue(bad, text("fine now"))
    reply = _model(provider, fake_llm_server).complete([Message("user", "hi")])
    assert reply.text == "fine now" and len(fake_llm_server.requests) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_garbage_that_persists_is_a_clear_model_error(fake_llm_server, provider):
    from evaluator.models.base import ModelError
    fake_llm_server.enqueue(*[Reply(body="<html>bad gateway</html>") for _ in range(3)])
    with pytest.raises(ModelError, match="not valid JSON .*3 attempts; retries exhausted"):
        _model(provider, fake_llm_server).complete([Message("user", "hi")])


@pytest.mark.docker
def test_a_container_killed_mid_episode_is_recorded_and_the_run_goes_on(tmp_path, toy_bundle, toy_image):
    actions = tmp_path / "slow.yaml"
    actions.write_text("schema_version: 1\nactions:\n  - exec: 'sleep 60'\n  - exec: 'echo never'\n")
    plan = RunPlan(bundle=toy_bundle, agent=create_agent("actions", actions=actions), seeds=[0, 1],
                   backend="docker", root=tmp_path, run_id="died")
    client = docker.from_env()

    def kill_first_agent_container():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = client.containers.list(filters={"label": [f"{LABEL_RUN}=died", f"{LABEL_EPISODE}={plan.episode_id(0)}"]})
            if found:
                time.sleep(2)
                found[0].kill()
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_first_agent_container, daemon=True)
    killer.start()
    first, second = execute(plan, toy_image.tag, toy_image.input_hash)
    killer.join()
    assert first["stop_reason"] == "sandbox_died" and first["outcomes"].get("sandbox_died") == 1
    assert first["success"] is False and first["status"] == "error" and "--resume" in first["error"]
    assert second["outcomes"].get("ok") == 1 or second["stop_reason"] != "sandbox_died"  # the run went on
    assert second["metrics"]["steps"] >= 1


@pytest.mark.docker
def test_a_container_removed_before_copy_out_is_a_sandbox_death_not_the_agents_fault(tmp_path, toy_bundle, toy_image,
                                                                                        monkeypatch):
    """The engine losing the container (removed from outside, engine restarted) just as the
    workspace is read is an error to run again, never a completed episode without output."""
    from evaluator.sandbox.docker import DockerSandbox
    original = DockerSandbox.copy_out

    def copy_out_of_a_removed_container(self, *args, **kwargs):
        self.client.api.remove_container(self.container.id, force=True)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(DockerSandbox, "copy_out", copy_out_of_a_removed_container)
    plan = RunPlan(bundle=toy_bundle, agent=create_agent("oracle"), seeds=[0], backend="docker", root=tmp_path,
                   run_id="gone")
    (result,) = execute(plan, toy_image.tag, toy_image.input_hash)
    assert result["status"] == "error" and result["stop_reason"] == "sandbox_died", result
    assert "copied out" in result["error"] and "--resume" in result["error"]
    assert result["outcomes"].get("artefacts_refused") == 1 and result["success"] is False


@pytest.mark.docker
@pytest.mark.parametrize("kill_at", ["episode_start", "agent_end", "graded"])
def test_the_evaluator_killed_at_any_point_of_an_episode_resumes_cleanly(tmp_path, kill_at):
    env = {**os.environ, "CTXEVAL_RUNS_DIR": str(tmp_path)}
    victim = subprocess.Popen(CLI + ["run", "toy", "--agent", "oracle", "--run-id", "k"], cwd=PROJECT_ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    events = tmp_path / "k" / "episodes" / "toy-oracle-s0" / "events.jsonl"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if events.exists() and any(json.loads(line)["event"] == kill_at
                                       for line in events.read_text().splitlines() if line.endswith("}")):
                break
            assert victim.poll() is None, victim.stderr.read().decode()
            time.sleep(0.05)
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
    result_file = tmp_path / "k" / "episodes" / "toy-oracle-s0" / "result.json"
    # after "graded" only the result is left to write (milliseconds): the kill may land on either side
    finished_first = kill_at == "graded" and result_file.exists()
    assert finished_first or not result_file.exists()
    before = result_file.read_bytes() if finished_first else None
    resumed = subprocess.run(CLI + ["run", "--resume", "k"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    results = list((tmp_path / "k" / "episodes").glob("*/result.json"))
    assert [p.parent.name for p in results] == ["toy-oracle-s0"]
    assert json.loads(results[0].read_text())["success"] is True
    if finished_first:  # a finished episode is kept as it is, never run again
        assert results[0].read_bytes() == before and not (tmp_path / "k" / "aborted").exists()
    else:  # the torn attempt is set aside and the episode run again
        assert len(list((tmp_path / "k" / "aborted").iterdir())) == 1
    client = docker.from_env()
    assert not client.containers.list(all=True, filters={"label": f"{LABEL_RUN}=k"})


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs for runs/ (needs root, as CI has); grown to 64 MiB with remount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_runs_disk_stops_the_run_cleanly_and_resume_finishes_it(small_disk):
    env = {**os.environ, "CTXEVAL_RUNS_DIR": str(small_disk)}
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (1024 * 1024 - 64 * 1024))  # leaves a few KiB
    full = subprocess.run(CLI + ["run", "toy", "--backend", "local", "--agent", "oracle", "--seeds", "2",
                                 "--run-id", "f"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert full.returncode == 2 and "Traceback" not in full.stderr
    assert "cannot write under" in full.stderr and "--resume f" in full.stderr
    ballast.unlink()
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    resumed = subprocess.run(CLI + ["run", "--resume", "f"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    results = sorted(p.parent.name for p in (small_disk / "f" / "episodes").glob("*/result.json"))
    assert results == ["toy-oracle-s0", "toy-oracle-s1"]
    assert sorted(p.name for p in (small_disk / "f" / "episodes").iterdir()) == results
    assert json.loads((small_disk / "f" / "summary.json").read_text())["successes"] == 2


def _restart_engine() -> None:
    """Stop the running Docker daemon (SIGTERM) and start it again with its own command line and
    environment, as its supervisor would; wait until it answers."""
    pids = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    if len(pids) != 1:
        pytest.fail(f"expected one dockerd, found {pids}")
    proc = Path("/proc") / pids[0]
    argv = [a for a in (proc / "cmdline").read_bytes().decode().split("\0") if a]
    environ = dict(item.split("=", 1) for item in (proc / "environ").read_bytes().decode().split("\0") if "=" in item)
    os.kill(int(pids[0]), signal.SIGTERM)
    deadline = time.monotonic() + 120
    while proc.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    log = open("/tmp/ctxeval-test-dockerd.log", "ab")
    subprocess.Popen(argv, env=environ, cwd="/", stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                     start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            return
        time.sleep(1)
    pytest.fail("the Docker engine did not come back within 120 s (see /tmp/ctxeval-test-dockerd.log)")


@pytest.mark.docker
@pytest.mark.skipif(not (os.environ.get("CI", "").lower() in ("1", "true", "yes")
                         or os.environ.get("CTXEVAL_TEST_ENGINE_RESTART") == "1"),
                    reason="restarts the machine's Docker engine: runs under CI=true (or CTXEVAL_TEST_ENGINE_RESTART=1)")
def test_an_engine_restart_mid_run_is_recorded_and_resume_finishes_the_run(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("restarting the engine needs root")
    actions = tmp_path / "slow.yaml"
    actions.write_text("schema_version: 1\nactions:\n  - exec: 'sleep 30'\n  - exec: 'echo done > done.txt'\n")
    env = {**os.environ, "CTXEVAL_RUNS_DIR": str(tmp_path)}
    run = subprocess.Popen(CLI + ["run", "toy", "--actions", str(actions), "--seeds", "2", "--run-id", "e"],
                           cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = docker.from_env()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not client.containers.list(filters={"label": f"{LABEL_RUN}=e"}):
        assert run.poll() is None, run.stderr.read()
        time.sleep(0.2)
    time.sleep(2)
    _restart_engine()
    run.communicate(timeout=600)  # the run ends by itself, whatever the episodes' fate
    results = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "e" / "episodes").glob("*/result.json")}
    assert results, "the interrupted run recorded nothing"
    hit = results.get("toy-scripted_actions-s0")
    assert hit is None or hit["status"] == "error"  # recorded as an infrastructure failure, never as a score
    resumed = subprocess.run(CLI + ["run", "--resume", "e"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    final = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "e" / "episodes").glob("*/result.json")}
    assert sorted(final) == sorted(p.name for p in (tmp_path / "e" / "episodes").iterdir())
    assert sorted(final) == ["toy-scripted_actions-s0", "toy-scripted_actions-s1"]
    assert all(r["status"] == "completed" and r["outcomes"] == {"ok": 2} for r in final.values())
    assert not docker.from_env().containers.list(all=True, filters={"label": f"{LABEL_RUN}=e"})
