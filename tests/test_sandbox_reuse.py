"""Warm sandboxes across a run's episodes (issue 14, item 3), through the real runner and engine.

- a container serves the next episode after a verified reset, and nothing the earlier episode left
  (files, /tmp, /dev/shm, /dev/mqueue, System V IPC, processes, variables, functions, a changed
  program) is visible to the later one;
- a container is retired after an outcome that may leave state (here: the pids limit), and every
  outcome of RETIRING_OUTCOMES retires it;
- result.json says whether the sandbox was reused and after how many episodes; --no-reuse gives a
  fresh container per episode, with the same grades; nothing of the run is left on the engine.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evaluator.agents import create_agent
from evaluator.bundles.data import prepare_data
from evaluator.episode.context import Budget
from evaluator.matrix import episode_id
from evaluator.runs import EpisodeJob, RunSettings, execute_jobs, run_record
from evaluator.sandbox.defaults import LABEL_RUN
from evaluator.sandbox.pool import RETIRING_EVENTS, RETIRING_OUTCOMES, retire_reason

REUSE = Path(__file__).parent / "reuse"
ORDER = ["leave_state", "look_for_state", "fork_bomb", "look_for_state"]


def _run(tmp_path: Path, bundle, image, reuse: bool) -> tuple[RunSettings, list[dict]]:
    prepared = prepare_data(bundle)
    jobs = []
    for seed, name in enumerate(ORDER):
        agent = create_agent("actions", actions=REUSE / f"{name}.yaml")
        jobs.append(EpisodeJob(bundle, seed, episode_id(bundle.id, agent.describe(), seed),
                               (lambda a=agent: a), prepared, image.tag, image.input_hash))
    settings = RunSettings(backend="docker", run_id=f"reuse-{'on' if reuse else 'off'}-{os.getpid()}",
                           root=tmp_path, budget=Budget(max_steps=10), max_parallel=1, reuse=reuse)
    return settings, execute_jobs(settings, run_record(settings), jobs)


def _events(settings: RunSettings, result: dict) -> list[dict]:
    path = settings.run_dir / "episodes" / result["episode_id"] / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _container(settings: RunSettings, result: dict) -> str:
    start = next(e for e in _events(settings, result) if e["event"] == "episode_start")
    return start["sandbox"]["container"]


def _first_exec(settings: RunSettings, result: dict) -> dict[str, str]:
    step = next(e for e in _events(settings, result) if e["event"] == "step" and e["action"] == "exec")
    return dict(line.split("=", 1) for line in step["result"]["stdout"].splitlines() if "=" in line)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, toy_bundle, toy_image):
    root = tmp_path_factory.mktemp("reuse")
    return _run(root, toy_bundle, toy_image, reuse=True), _run(root, toy_bundle, toy_image, reuse=False)


def test_retire_reason_names_every_retiring_outcome_and_event():
    assert retire_reason({}, [], failed=False) is None
    assert retire_reason({"ok": 3, "nonzero_exit": 1, "timeout": 2}, [{"event": "watchdog_kill"}], False) is None
    for name in RETIRING_OUTCOMES:
        assert retire_reason({"ok": 1, name: 1}, [], failed=False) == name
    for name in RETIRING_EVENTS:
        assert retire_reason({}, [{"event": name}], failed=False) == name
    assert retire_reason({}, [{"event": "quiesce", "outcome": "failed"}], False) == "quiesce_failed"
    assert retire_reason({}, [], failed=True) == "episode_failed"


@pytest.mark.docker
@pytest.mark.slow
def test_a_reused_container_shows_nothing_of_the_episode_before(runs):
    (settings, results), _ = runs
    first, second = results[0], results[1]
    assert first["sandbox"]["reused"] is False and first["sandbox"]["retired"] is None
    assert second["sandbox"]["reused"] is True and second["sandbox"]["episodes_before"] == 1
    assert _container(settings, first) == _container(settings, second)
    left = _first_exec(settings, first)
    assert left["venv"] != "0" and left["bash"] != "0", left  # the programs the evaluator runs stay as they are
    seen = _first_exec(settings, second)
    assert seen == {"pwd": "/workspace", "files": "", "train": "0", "ipc": "0", "procs": "0",
                    "var": "unset fn=none"}, seen


@pytest.mark.docker
@pytest.mark.slow
def test_a_container_is_retired_after_an_outcome_that_may_leave_state(runs):
    (settings, results), _ = runs
    bombed, after = results[2], results[3]
    assert bombed["outcomes"].get("pids_limit", 0) > 0, bombed["outcomes"]
    assert bombed["sandbox"]["reused"] is True and bombed["sandbox"]["retired"] == "pids_limit"
    assert after["sandbox"]["reused"] is False and after["sandbox"]["episodes_before"] == 0
    assert _container(settings, after) != _container(settings, bombed)
    assert _first_exec(settings, after)["files"] == ""


@pytest.mark.docker
@pytest.mark.slow
def test_no_reuse_gives_a_fresh_container_per_episode_and_the_same_grades(runs, docker_client):
    (reused_settings, reused), (fresh_settings, fresh) = runs
    assert all(r["sandbox"]["reused"] is False for r in fresh)
    assert len({_container(fresh_settings, r) for r in fresh}) == len(fresh)
    assert [r["grade"] for r in fresh] == [r["grade"] for r in reused]
    assert [r["status"] for r in fresh] == [r["status"] for r in reused]
    assert json.loads((reused_settings.run_dir / "run.json").read_text())["reuse"] is True
    for settings in (reused_settings, fresh_settings):
        left = docker_client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={settings.run_id}"})
        assert left == [], [c.name for c in left]
