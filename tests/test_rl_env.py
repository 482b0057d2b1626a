"""The RL interface: a warm sandbox whose reset leaves no trace of the previous episode."""
from __future__ import annotations

import subprocess
import sys

import pytest

from evaluator.episode.context import Budget
from evaluator.paths import BUNDLES_DIR, PROJECT_ROOT
from evaluator.rl import BundleEnv
from evaluator.sandbox.base import folder_digest

pytestmark = pytest.mark.docker

PROCESS_LIST = ("for d in /proc/[0-9]*; do p=${d#/proc/}; [ \"$p\" = $$ ] && continue; "
                "echo \"$p $(tr '\\0' ' ' < $d/cmdline)\"; done")


@pytest.fixture
def env(toy_bundle, toy_image, docker_client, tmp_path):
    environment = BundleEnv(toy_bundle, image=toy_image.tag, budget=Budget(max_steps=12), events_dir=tmp_path,
                            client=docker_client)
    yield environment
    environment.close()


def test_reset_gives_the_starter_and_the_task(env, toy_bundle):
    observation, info = env.reset(seed=0)
    assert observation["task"] == toy_bundle.task_text and observation["step"] == 0
    assert info["workspace_digest"] == folder_digest(toy_bundle.starter_dir)


def test_reset_leaves_no_trace_of_a_hostile_episode(env, toy_bundle):
    env.reset()
    container = env.sandbox.container
    dirty = ("echo junk > junk.txt; mkdir -p deep/er && echo x > deep/er/f; rm -f config.json; "
             "echo secret > /tmp/leftover; mkdir -p /tmp/d && echo y > /tmp/d/z; echo s > /dev/shm/shm; "
             "chmod 000 deep; nohup sleep 1000 >/dev/null 2>&1 & setsid sleep 1001 >/dev/null 2>&1 < /dev/null & "
             "sleep 0.3; echo done")
    observation, reward, terminated, truncated, _ = env.step({"exec": dirty})
    assert "done" in observation["text"] and reward == 0.0 and not terminated and not truncated
    survivors = env.sandbox.exec(PROCESS_LIST).stdout
    assert "sleep 1001" in survivors  # the setsid process outlived its exec: reset must kill it
    observation, info = env.reset()
    assert env.sandbox.container is container  # warm: the same container, not a new one
    assert info["workspace_digest"] == folder_digest(toy_bundle.starter_dir)
    check = env.sandbox.exec("ls -A /tmp /dev/shm; ls -A")
    listed = [n for n in check.stdout.split() if not n.startswith(".ctxeval-exec-")]  # this exec's own pid file
    assert listed == ["/dev/shm:", "/tmp:", "config.json", "train.py"]
    processes = env.sandbox.exec(PROCESS_LIST).stdout.strip().splitlines()
    assert [line.split()[0] for line in processes if "sleep" in line] == []


def test_step_tool_and_submit_are_rewarded_with_the_grade(env, toy_bundle):
    env.reset()
    observation, reward, terminated, truncated, info = env.step(
        {"tool": "train_and_evaluate", "args": {"config": {"model": "random_forest"}}})
    assert '"cv_accuracy"' in observation["text"] and reward == 0.0 and not terminated
    observation, reward, terminated, truncated, info = env.step({"submit": {}})
    assert terminated and not truncated
    assert reward == info["score"] and reward >= toy_bundle.target.target_score() and info["success"] is True
    observation, reward, terminated, _, info = env.step({"exec": "true"})  # after the end: answered, not raised
    assert terminated and reward == 0.0 and "call reset()" in observation["text"] and "call reset()" in info["error"]
    _, info = env.reset()  # and the next episode starts clean
    assert info["episode"] == 2 and info["workspace_digest"] == folder_digest(toy_bundle.starter_dir)


def test_running_out_of_steps_truncates(toy_bundle, toy_image, docker_client):
    with BundleEnv(toy_bundle, image=toy_image.tag, budget=Budget(max_steps=2), reward="success",
                   client=docker_client) as env:
        env.reset()
        assert env.step({"exec": "true"})[3] is False
        assert env.step({"exec": "true"})[3] is False
        _, reward, terminated, truncated, info = env.step({"exec": "true"})
        assert truncated and not terminated and reward == 0.0 and info["stop_reason"] == "max_steps"


def test_cli_reset_restores_a_folder(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "stale.txt").write_text("old")
    cli = [sys.executable, "-m", "evaluator", "reset", "toy", "--workspace", str(workspace)]
    refused = subprocess.run(cli, capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert refused.returncode != 0 and "not empty" in refused.stderr and (workspace / "stale.txt").exists()
    done = subprocess.run(cli + ["--force"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    assert folder_digest(workspace) == folder_digest(BUNDLES_DIR / "toy" / "starter")
