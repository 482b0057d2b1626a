"""The adversarial suite: hostile actions (tests/adversarial/*.yaml) played through the real agent
path in docker sandboxes, next to an honest episode of the same run. Every attack fails or is
contained and is recorded with a clear outcome; the host, the bundle, the private answers and the
neighbouring episode are untouched; the run carries on to graded results."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import docker
import pytest

from evaluator.agents import create_agent
from evaluator.bundles.data import prepare_data
from evaluator.episode.context import Budget
from evaluator.hashing import hash_tree
from evaluator.matrix import episode_id
from evaluator.runs import EpisodeJob, RunSettings, execute_jobs, run_record
from evaluator.sandbox.docker import LABEL_RUN
from evaluator.sandbox.pool import RETIRING_OUTCOMES

pytestmark = pytest.mark.docker

ADVERSARIAL = Path(__file__).parent / "adversarial"
CANARY = "ctxeval-canary-" + secrets.token_hex(12)
ESCAPED = Path("/tmp/ctxeval-escaped")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, toy_bundle, toy_image):
    prepared = prepare_data(toy_bundle)
    before = {"bundle": hash_tree(toy_bundle.root), "public": hash_tree(prepared.public),
              "private": hash_tree(prepared.private)}
    ESCAPED.unlink(missing_ok=True)
    saved = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "CTXEVAL_CANARY")}
    os.environ.update(OPENAI_API_KEY=CANARY, CTXEVAL_CANARY=CANARY)  # secrets the host holds
    agents = {"hostile": create_agent("actions", actions=ADVERSARIAL / "hostile_actions.yaml"),
              "bombs": create_agent("actions", actions=ADVERSARIAL / "artefact_bombs.yaml"),
              "oracle": create_agent("oracle")}
    seeds = {"hostile": 0, "bombs": 1, "oracle": 0}
    jobs = [EpisodeJob(toy_bundle, seeds[k], episode_id(toy_bundle.id, a.describe(), seeds[k]),
                       (lambda a=a: a), prepared, toy_image.tag, toy_image.input_hash) for k, a in agents.items()]
    settings = RunSettings(backend="docker", run_id="adversarial-" + secrets.token_hex(3),
                           root=tmp_path_factory.mktemp("runs"), budget=Budget(max_steps=60), max_parallel=2)
    try:
        results = execute_jobs(settings, run_record(settings), jobs)
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    by_kind = dict(zip(agents, results))
    events = {kind: [json.loads(line) for line in
                     (settings.run_dir / "episodes" / r["episode_id"] / "events.jsonl").read_text().splitlines()]
              for kind, r in by_kind.items()}
    after = {"bundle": hash_tree(toy_bundle.root), "public": hash_tree(prepared.public),
             "private": hash_tree(prepared.private)}
    return settings, by_kind, events, before, after


def attacks(events: list[dict]) -> dict[str, dict]:
    found = {}
    for event in events:
        command = event.get("command") or ""
        if event.get("event") == "step" and command.startswith(": attack="):
            found[command.split(";", 1)[0].removeprefix(": attack=")] = event["result"]
    return found


def test_every_hostile_action_ran_and_was_recorded(hostile_run):
    _, results, events, _, _ = hostile_run
    hostile = attacks(events["hostile"])
    assert len(hostile) == 22  # none was skipped: the episode carried on after each one
    result = results["hostile"]
    assert result["status"] == "completed" and result["stop_reason"] == "submitted"
    assert sum(result["outcomes"].values()) >= 22


def test_network_egress_is_impossible(hostile_run):
    hostile = attacks(hostile_run[2]["hostile"])
    for name, reason in (("tcp_egress", "unreachable"), ("dns", "gaierror"), ("raw_socket", "PermissionError")):
        assert hostile[name]["outcome"] == "nonzero_exit", name
        assert reason in hostile[name]["stderr"] or (name == "tcp_egress" and "OSError" in hostile[name]["stderr"]), \
            hostile[name]["stderr"]


def test_no_host_secret_or_private_answer_reaches_the_agent(hostile_run):
    settings, _, events, _, _ = hostile_run
    hostile = attacks(events["hostile"])
    assert "Permission denied" in hostile["host_env"]["stderr"]  # PID 1 is not the agent's: its environ is closed
    assert "CTXEVAL_WORKSPACE=" in hostile["host_env"]["stdout"]  # the agent's own environment was printed
    assert CANARY not in hostile["host_env"]["stdout"] and "OPENAI_API_KEY" not in hostile["host_env"]["stdout"]
    assert hostile["private_answers"]["outcome"] == "nonzero_exit"
    assert hostile["private_answers"]["stdout"] == "/grader:\n\n/private:\n"  # empty mount points, nothing found
    assert "No such file" in hostile["private_answers"]["stderr"]
    assert CANARY not in json.dumps(hostile["secret_files"])
    for path in settings.run_dir.rglob("*"):  # nothing the run wrote holds the host's secret
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_nothing_outside_the_workspace_is_writable(hostile_run):
    hostile = attacks(hostile_run[2]["hostile"])
    assert hostile["write_outside"]["outcome"] == "ok" and "WROTE" not in hostile["write_outside"]["stdout"]
    assert hostile["overwrite_grader"]["outcome"] == "nonzero_exit"
    assert "Read-only file system" in hostile["overwrite_grader"]["stderr"]
    assert hostile["overwrite_grader"]["stdout"] == ""  # /grader is an empty mount point for the agent


def test_privilege_escalation_fails(hostile_run):
    hostile = attacks(hostile_run[2]["hostile"])
    assert hostile["setuid"]["outcome"] == "nonzero_exit" and "Operation not permitted" in hostile["setuid"]["stderr"]
    assert hostile["mount"]["outcome"] == "nonzero_exit"
    assert hostile["proc_sys"]["outcome"] == "nonzero_exit"
    assert any(m in hostile["proc_sys"]["stderr"] for m in ("Read-only file system", "No such file", "Permission denied"))
    assert hostile["docker_socket"]["outcome"] == "nonzero_exit"
    assert "FileNotFoundError" in hostile["docker_socket"]["stderr"]


def test_resource_attacks_end_in_their_own_outcomes(hostile_run):
    hostile = attacks(hostile_run[2]["hostile"])
    assert hostile["fork_bomb"]["outcome"] == "pids_limit"
    assert hostile["memory_hog"]["outcome"] == "memory_killed"
    assert hostile["disk_fill"]["outcome"] == "disk_full"
    assert hostile["disk_cleanup"]["outcome"] == "ok"
    size_mb = int(hostile["disk_cleanup"]["stdout"].splitlines()[-1].split()[1])
    assert size_mb <= 512  # the workspace is capped (half the memory limit), the host disk never saw it
    assert hostile["output_flood"]["outcome"] == "output_capped"
    assert hostile["infinite_loop"]["outcome"] == "timeout"


def test_processes_left_behind_are_killed_before_grading(hostile_run):
    settings, results, events, _, _ = hostile_run
    hostile = attacks(events["hostile"])
    assert hostile["lingering_process"]["outcome"] == "ok" and hostile["race_grader"]["outcome"] == "ok"
    assert any(e.get("event") == "quiesce" and e.get("outcome") == "ok" for e in results["hostile"]["sandbox_events"])
    grade = results["hostile"]["grade"]
    # the racing loop was killed first: the grader saw no link to the answers, only the forged files
    assert results["hostile"]["score"] is None or results["hostile"]["score"] < 0.9
    assert grade is None or grade.get("score") != 1.0
    client = docker.from_env()
    assert not client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={settings.run_id}"})
    assert not client.volumes.list(filters={"label": f"{LABEL_RUN}={settings.run_id}"})


def test_links_and_forgeries_in_artefacts_stay_inert(hostile_run):
    settings, results, _, _, _ = hostile_run
    workspace = settings.run_dir / "episodes" / results["hostile"]["episode_id"] / "workspace"
    copied = [p for p in workspace.rglob("*")]
    assert not any(p.is_symlink() for p in copied)  # links pointing at host paths were not recreated
    assert not (workspace / "passwd_link").exists() and not (workspace / "d" / "host").exists()
    assert all(p.resolve().is_relative_to(workspace.resolve()) for p in copied)
    forged = json.loads((workspace / "grade.json").read_text())
    assert forged["score"] == 1.0 and results["hostile"]["grade"] != forged  # the forgery is only a file


def test_artefact_bombs_are_capped_and_never_unpacked(hostile_run):
    settings, results, events, _, _ = hostile_run
    bombs = attacks(events["bombs"])
    assert all(r["outcome"] == "ok" for r in bombs.values()), bombs
    result = results["bombs"]
    assert result["status"] == "completed" and result["outcomes"].get("artefact_skipped") == 1
    [skipped] = next(e for e in events["bombs"] if e.get("event") == "artefacts_skipped")["skipped"]
    assert skipped["name"] == "giant.bin" and "314572800 bytes" in skipped["reason"]
    workspace = settings.run_dir / "episodes" / result["episode_id"] / "workspace"
    assert not (workspace / "giant.bin").exists()
    assert (workspace / "bomb.zip").stat().st_size < 4 * 1024 * 1024  # copied as the small file it is
    assert not (workspace / "zeros").exists() and (workspace / "escape.tar").is_file()
    assert len(list((workspace / "many").iterdir())) == 20000
    assert not ESCAPED.exists()  # nothing unpacked the tar, on the host or anywhere
    assert result["grade"] is not None  # graded all the same


def test_host_bundle_answers_and_neighbour_are_untouched(hostile_run):
    _, results, _, before, after = hostile_run
    assert before == after
    oracle = results["oracle"]
    assert oracle["status"] == "completed" and oracle["success"] is True
    assert oracle["outcomes"] == {"ok": oracle["outcomes"]["ok"]}


def test_the_suite_runs_with_reuse_and_the_hostile_container_is_retired(hostile_run):
    settings, by_kind, _events, _before, _after = hostile_run
    assert settings.reuse, "the adversarial suite runs with warm sandboxes, the default"
    hostile = by_kind["hostile"]["sandbox"]
    assert hostile["retired"] in RETIRING_OUTCOMES, hostile  # it hit the memory, pids or disk limits
    # the artefact bombs leave nothing a reset does not clear: kept warm, and whoever comes next is unharmed
    assert by_kind["bombs"]["sandbox"]["retired"] is None
    assert by_kind["oracle"]["success"] is True, by_kind["oracle"]["sandbox"]
