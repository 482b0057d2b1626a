"""The Ray executor on a real Ray cluster (issue 15): a head with no sandboxes, a worker on this
host and a worker in a network namespace of its own (tests/ray_nodes.py), one cluster for the
module.

- a 2-policy × 4-seed sweep in which both workers run episodes, the head none; spans carry the
  node; run.json lists the cluster's nodes; the run folder is what the local executor writes;
- the summary equals the local executor's for the same matrix, and `ctxeval run --resume` of a
  Ray run finishes it on the cluster;
- a worker killed mid-run, and a worker whose network is cut mid-run: their attempts are recorded
  as infrastructure errors, the episodes run again on the other worker, every episode is present
  exactly once, and nothing of the run is left on the engine.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ray_nodes import AUTH_ENV, Cluster, Namespace  # first: it sets Ray's token for this process

import ray  # noqa: E402  (after ray_nodes)
from evaluator.bundles import load_bundle
from evaluator.episode.context import Budget
from evaluator.images import ImageBuilder
from evaluator.matrix import RunMatrix
from evaluator.paths import BUNDLES_DIR
from evaluator.runs import RunSettings, execute_jobs, matrix_jobs, run_record
from evaluator.sandbox.defaults import LABEL_RUN

pytestmark = [pytest.mark.docker, pytest.mark.slow]

POLICIES = ["full_history", "sliding_window"]
SEEDS = [0, 1, 2, 3]
BUDGET = Budget(max_steps=3)
RUN_TIMEOUT_SECONDS = 900


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    namespace = Namespace.create()
    made = Cluster(namespace, tmp_path_factory.mktemp("ray-nodes"), port=26400 + os.getpid() % 500)
    try:
        made.start()
        yield made
    finally:
        if ray.is_initialized():
            ray.shutdown()
        made.stop()
        namespace.remove()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    bundle = load_bundle(BUNDLES_DIR / "toy")
    ref = ImageBuilder().bundle_image(bundle)
    matrix = RunMatrix.from_options([str(BUNDLES_DIR / "toy")], policies=POLICIES, seeds=SEEDS)
    root = tmp_path_factory.mktemp("ray-runs")

    def run(run_id: str, executor: str, address: str | None = None) -> tuple[RunSettings, list[dict]]:
        jobs = matrix_jobs(matrix, {str(BUNDLES_DIR / "toy"): bundle}, {str(BUNDLES_DIR / "toy"): (ref.tag, ref.input_hash)})
        settings = RunSettings(backend="docker", run_id=run_id, root=root, budget=BUDGET, max_parallel=2,
                               executor=executor, ray_address=address)
        record = run_record(settings, matrix=matrix.as_record())
        return settings, execute_jobs(settings, record, jobs)

    run.root = root  # type: ignore[attr-defined]
    run.matrix = matrix  # type: ignore[attr-defined]
    return run


@pytest.fixture(scope="module")
def ray_run(cluster, sweep):
    return sweep("ray-sweep", "ray", cluster.address)


def _spans(settings: RunSettings) -> list[dict]:
    return [json.loads(line) for line in (settings.run_dir / "traces.jsonl").read_text().splitlines()]


def _episode_nodes(settings: RunSettings) -> dict[str, str]:
    return {s["attributes"]["ctxeval.episode_id"]: s["attributes"].get("ctxeval.node")
            for s in _spans(settings) if s["name"] == "episode"}


def _left_on_engine(run_id: str) -> list[str]:
    import docker
    client = docker.from_env()  # the low-level listings: a container removed while listed is no error
    containers = client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
    volumes = client.api.volumes(filters={"label": f"{LABEL_RUN}={run_id}"}).get("Volumes") or []
    return [c["Id"] for c in containers] + [v["Name"] for v in volumes]


def _wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_sweep_runs_on_both_workers_and_never_on_the_head(cluster, ray_run):
    settings, results = ray_run
    ids = sorted(r["episode_id"] for r in results)
    assert len(ids) == len(POLICIES) * len(SEEDS) == len(set(ids))
    assert all(r["status"] != "error" for r in results), [r.get("error") for r in results]
    workers = cluster.node_ids()
    nodes = _episode_nodes(settings)
    assert set(nodes) == set(ids)
    assert set(nodes.values()) == {workers["host"], workers["netns"]}, (nodes, workers)  # both, and no other
    for episode in ids:  # every episode folder written by the driver, as the local executor writes it
        folder = settings.run_dir / "episodes" / episode
        assert json.loads((folder / "result.json").read_text())["episode_id"] == episode
        assert (folder / "events.jsonl").stat().st_size > 0
    record = json.loads((settings.run_dir / "run.json").read_text())
    assert record["executor"] == "ray" and record["status"] == "finished"
    listed = {node["node_id"]: node for node in record["execution"]["nodes"]}
    assert {workers["host"], workers["netns"]} <= set(listed)
    assert len(listed) == 3 and sum(1 for n in listed.values() if not n["resources"].get("ctxeval_sandbox")) == 1
    run_span = next(s for s in _spans(settings) if s["name"] == "run")
    episode_spans = [s for s in _spans(settings) if s["name"] == "episode"]
    assert all(s["parent_id"] == run_span["span_id"] and s["trace_id"] == run_span["trace_id"] for s in episode_spans)
    reused = [r for r in results if r["sandbox"]["reused"]]
    assert reused, "no worker kept a warm sandbox across its episodes"
    # the workers' warm sandboxes end with their processes, which Ray ends with the run's driver
    _wait_until(lambda: not _left_on_engine(settings.run_id), 60, "the run's containers to be gone")


def test_the_ray_summary_equals_the_local_one_and_a_ray_run_resumes_on_the_cluster(cluster, ray_run, sweep):
    settings, _ = ray_run
    local, _ = sweep("local-sweep", "local")
    ray_summary = json.loads((settings.run_dir / "summary.json").read_text())
    assert ray_summary == json.loads((local.run_dir / "summary.json").read_text())

    removed = sorted(ray_summary["episode_ids"])[:2]
    for episode in removed:
        shutil.rmtree(settings.run_dir / "episodes" / episode)
    before = {s["span_id"] for s in _spans(settings)}
    done = subprocess.run([str(Path(sys.executable).with_name("ctxeval")), "run", "--resume", settings.run_id,
                           "--runs-dir", str(settings.run_dir.parent)], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_SECONDS, env={**os.environ, **AUTH_ENV}, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads((settings.run_dir / "summary.json").read_text()) == ray_summary
    again = {s["attributes"]["ctxeval.episode_id"]: s["attributes"]["ctxeval.node"]
             for s in _spans(settings) if s["name"] == "episode" and s["span_id"] not in before}
    assert sorted(again) == removed  # only the missing ones ran again, on the cluster's workers
    assert set(again.values()) <= set(cluster.node_ids().values())


def _run_in_background(sweep, run_id: str, address: str) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["settings"], outcome["results"] = sweep(run_id, "ray", address)
        except BaseException as exc:  # reported by the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _check_lost_and_rerun(outcome: dict, lost_node: str, cluster: Cluster) -> None:
    assert "error" not in outcome, repr(outcome.get("error"))
    settings, results = outcome["settings"], outcome["results"]
    ids = [r["episode_id"] for r in results]
    assert len(ids) == len(POLICIES) * len(SEEDS) == len(set(ids))  # every episode, exactly once
    assert all(r["status"] != "error" for r in results)
    summary = json.loads((settings.run_dir / "summary.json").read_text())
    assert summary["episodes"] == len(ids) and sorted(summary["episode_ids"]) == sorted(ids)
    attempts = [json.loads(p.read_text()) for p in (settings.run_dir / "aborted").glob("*-attempt*.json")]
    assert attempts and all(a["infrastructure"] for a in attempts), attempts
    assert {a["episode_id"] for a in attempts} <= set(ids)
    rerun = _episode_nodes(settings)
    assert all(rerun[a["episode_id"]] != lost_node for a in attempts)  # each lost one finished elsewhere
    _wait_until(lambda: not _left_on_engine(settings.run_id), 120, "the run's containers to be gone")


def _lose_a_worker_mid_run(cluster: Cluster, sweep, worker: str, lose, restore) -> None:
    """Run the sweep, `lose` the worker once it runs an episode, check the run, then `restore` it."""
    node = cluster.workers[worker]
    lost_node = cluster.node_ids()[worker]
    thread, outcome = _run_in_background(sweep, f"ray-lost-{worker}", cluster.address)
    try:
        _wait_until(lambda: node.running_episodes() > 0 or not thread.is_alive(), 300, f"an episode on {worker}")
        assert thread.is_alive(), f"the run ended before the {worker} worker got an episode"
        lose()
        thread.join(RUN_TIMEOUT_SECONDS)
        assert not thread.is_alive()
        _check_lost_and_rerun(outcome, lost_node, cluster)
    finally:
        restore()
        cluster.restart_worker(worker)


def test_a_killed_worker_s_episodes_run_again_on_the_other(cluster, sweep):
    _lose_a_worker_mid_run(cluster, sweep, "host", lose=cluster.workers["host"].kill, restore=lambda: None)


def test_a_worker_cut_off_mid_run_is_replaced_by_the_other(cluster, sweep):
    _lose_a_worker_mid_run(cluster, sweep, "netns", lose=lambda: cluster.namespace.link(up=False),
                           restore=lambda: cluster.namespace.link(up=True))
