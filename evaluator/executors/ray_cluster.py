"""The Ray executor's driver side: join (or start) a Ray cluster, send each episode to a node
that advertises a Docker engine, and write what comes back into the run folder.

A node offers sandboxes through the custom resource RESOURCE (`ray start --address=HEAD
--resources='{"ctxeval_sandbox": 4}'`: up to four episodes at once there); each episode asks
for PER_EPISODE of it and no CPU, so a node without the resource (e.g. a head with no engine) is
never given one, and the nodes' resources, not --max-parallel, set how many run at once.

An attempt lost to the cluster (its worker or node died, its node was cut off, the node could not
set up) is an infrastructure error: recorded under aborted/, never a score, and the episode runs
again (Ray places it on a live node), up to MAX_ATTEMPTS times. Each episode's folder is written
once, by the driver, from the attempt that finished.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from ..atomic import write_json_atomic
from ..errors import CtxevalError
from ..run_files import ABORTED_DIR, EPISODES_DIR, now_stamp
from ..tracing.transfer import parent_ids
from .base import EpisodeJob, Execution, Executor
from .ray_task import EpisodeReturn, EpisodeTask, NodeSetupError
from .shipping import install_folder, ship_bundle

RESOURCE = "ctxeval_sandbox"
PER_EPISODE = 1
MAX_ATTEMPTS = 3
POLL_SECONDS = 0.25
INSTALL_HINT = "the ray executor needs Ray: pip install 'ctxeval[ray]'"


# Ray's driver gives up on a connection to a silent node only after its gRPC keepalive (by default
# 300 s, then 120 s more): a cut-off node's episodes would wait 7 minutes to run again. An episode
# is a long task on a quiet connection, so the driver asks every 10 s (unless the user set these).
DRIVER_RAY_ENVIRONMENT = {"RAY_grpc_client_keepalive_time_ms": "10000", "RAY_grpc_client_keepalive_timeout_ms": "10000"}


def import_ray() -> Any:
    for name, value in DRIVER_RAY_ENVIRONMENT.items():
        if "ray" not in sys.modules:  # Ray reads them when first imported
            os.environ.setdefault(name, value)
    try:
        import ray
    except ImportError as exc:
        raise CtxevalError(INSTALL_HINT) from exc
    return ray


def _remote_episode(task: EpisodeTask, shipment: Any) -> EpisodeReturn:
    from .ray_task import run_episode_task, this_node
    return run_episode_task(task, shipment, this_node())


def infrastructure_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """The failures that say nothing about the episode, only about where it ran."""
    names = ("WorkerCrashedError", "NodeDiedError", "ObjectLostError", "RaySystemError", "LocalRayletDiedError",
             "OutOfMemoryError", "TaskUnschedulableError", "ObjectFetchTimedOutError", "GetTimeoutError")
    return tuple(getattr(ray.exceptions, name) for name in names if hasattr(ray.exceptions, name))


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, address: str | None = None, local_slots: int = 1):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.local_slots = local_slots  # sandboxes a Ray started for the run offers on this host
        self.ray: Any = None
        self.joined = False  # this executor called ray.init (it disconnects, or ends the Ray it started)

    def start(self) -> dict[str, Any]:
        ray = self.ray = import_ray()
        if not ray.is_initialized():
            init = ({"address": self.address} if self.address  # "local": a new Ray, never one found running here
                    else {"address": "local", "resources": {RESOURCE: self.local_slots}})
            ray.init(**init, include_dashboard=False, log_to_driver=False, configure_logging=False)
            self.joined = True
        nodes = cluster_nodes(ray)
        if not any(node["alive"] and node["resources"].get(RESOURCE, 0) >= PER_EPISODE for node in nodes):
            raise CtxevalError(f"no live node of the Ray cluster{' at ' + self.address if self.address else ''} "
                               f"advertises the {RESOURCE} resource: start each worker that has a Docker engine "
                               f"with ray start --address=HEAD --resources='{{\"{RESOURCE}\": 4}}'")
        return {"name": self.name, "address": self.address or "local (started for the run)", "resource": RESOURCE,
                "per_episode": PER_EPISODE, "nodes": nodes}

    def interrupted(self, signum: int, run_id: str) -> None:
        """Nothing here: execute() sees the run's interrupt and cancels the tasks (not from a
        signal handler); this host holds none of the run's sandboxes."""

    def close(self) -> None:
        if self.joined and self.ray is not None:
            self.ray.shutdown()

    def execute(self, execution: Execution, pending: list[EpisodeJob], done: dict[str, dict[str, Any]]) -> None:
        ray = self.ray
        remote = ray.remote(_remote_episode).options(resources={RESOURCE: PER_EPISODE}, num_cpus=0, max_retries=0,
                                                      retry_exceptions=False)
        bundles = {job.bundle.id: job for job in pending}  # one shipment per bundle, whatever its episodes
        shipments = {bundle_id: ray.put(ship_bundle(job.bundle, job.prepared)) for bundle_id, job in bundles.items()}
        if execution.image_registry:
            push_run_images(sorted({job.image for job in pending if job.image}), execution.image_registry)
        tasks = {job.episode_id: self._task(execution, job) for job in pending}
        jobs = {job.episode_id: job for job in pending}
        flying: dict[Any, tuple[str, int]] = {}

        def submit(episode_id: str, attempt: int) -> None:
            if execution.hooks.on_start and attempt == 1:  # a rerun is the same episode, still running
                execution.hooks.on_start(jobs[episode_id])
            ref = remote.remote(tasks[episode_id], shipments[jobs[episode_id].bundle.id])
            flying[ref] = (episode_id, attempt)

        for job in pending:
            submit(job.episode_id, 1)
        try:
            self._collect(execution, flying, submit, done)
        finally:
            for ref in flying:  # interrupted, or failed: nothing of the run keeps running on the cluster
                ray.cancel(ref, force=True)  # the worker dies; each sandbox ends with it

    def _collect(self, execution: Execution, flying: dict[Any, tuple[str, int]], submit: Any,
                 done: dict[str, dict[str, Any]]) -> None:
        """Take each finished task's episode in; run a lost one again; return once all are in
        (or at an interrupt, with `flying` holding what still runs)."""
        ray = self.ray
        lost = infrastructure_errors(ray)
        while flying:
            if execution.interrupt.is_set():
                return
            ready, _ = ray.wait(list(flying), num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                episode_id, attempt = flying.pop(ref)
                try:
                    returned: EpisodeReturn = ray.get(ref)
                except (*lost, ray.exceptions.RayTaskError) as exc:
                    cause = _cause(ray, exc)
                    if not isinstance(cause, (NodeSetupError, *lost)):
                        raise cause from exc
                    self._lost_attempt(execution, episode_id, attempt, cause)
                    submit(episode_id, attempt + 1)
                    continue
                self._land(execution, returned, done)

    def _task(self, execution: Execution, job: EpisodeJob) -> EpisodeTask:
        return EpisodeTask(run_id=execution.run_id, episode_id=job.episode_id, seed=job.seed,
                           make_agent=job.make_agent, backend=execution.backend, image=job.image,
                           image_hash=job.image_hash, runtime=execution.runtime, budget=execution.budget,
                           probes=execution.probes, reuse=execution.reuse, reuse_limit=execution.reuse_limit,
                           image_registry=execution.image_registry,
                           trace_parent=parent_ids(execution.trace_parent),
                           trace_attributes=dict(execution.tracing.attributes))

    def _land(self, execution: Execution, returned: EpisodeReturn, done: dict[str, dict[str, Any]]) -> None:
        result = returned.result
        install_folder(returned.folder, execution.run_dir / EPISODES_DIR / result["episode_id"])
        execution.accept_spans(returned.spans)
        done[result["episode_id"]] = result
        if execution.hooks.on_episode:
            execution.hooks.on_episode(result, False)

    def _lost_attempt(self, execution: Execution, episode_id: str, attempt: int, cause: BaseException) -> None:
        """Record an attempt the cluster lost; give up after MAX_ATTEMPTS (finished episodes kept)."""
        record = {"episode_id": episode_id, "attempt": attempt, "at": now_stamp(), "executor": self.name,
                  "error": f"{type(cause).__name__}: {str(cause)[:2000]}", "infrastructure": True}
        write_json_atomic(execution.run_dir / ABORTED_DIR / f"{episode_id}-attempt{attempt}.json", record)
        if attempt >= MAX_ATTEMPTS:
            raise CtxevalError(f"episode {episode_id} was lost by the Ray cluster {attempt} times (last: "
                               f"{record['error'][:300]}); finished episodes are kept: fix the cluster, then "
                               f"`ctxeval run --resume {execution.run_id}`")


def push_run_images(tags: list[str], registry: str) -> None:
    """Push the run's images this host holds, so nodes pull them instead of building
    (`--image-registry`); an image this host does not hold is taken to be in the registry already
    (each node checks the input hash of what it pulls)."""
    import docker

    from ..images.push import normalize_registry, push_image
    client = docker.from_env()
    for tag in tags:
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            continue
        push_image(client, tag, normalize_registry(registry))


def _cause(ray: Any, error: BaseException) -> BaseException:
    """The exception a task raised (RayTaskError wraps it), or the error itself."""
    if isinstance(error, ray.exceptions.RayTaskError):
        cause = error.cause if getattr(error, "cause", None) is not None else error
        return cause
    return error


def cluster_nodes(ray: Any) -> list[dict[str, Any]]:
    """The cluster's nodes as run.json records them."""
    return [{"node_id": node.get("NodeID"), "address": node.get("NodeManagerAddress"),
             "host": node.get("NodeManagerHostname"), "alive": bool(node.get("Alive")),
             "resources": {k: v for k, v in (node.get("Resources") or {}).items() if not k.startswith("node:")}}
            for node in ray.nodes()]
