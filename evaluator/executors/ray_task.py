"""One episode as a Ray task, on the node Ray placed it (imports Ray only through the caller).

The node lands the shipped bundle and data in its cache, makes sure the bundle's image exists in
its Docker engine under the driver's input hash (built from the bundle when missing: no registry
needed), runs the episode against its own engine in a temporary folder, and returns the folder,
the result and the episode's spans. Nothing is written where the driver's run folder is.

Warm sandboxes: a Ray worker process keeps the run's pools (as the local executor does, with the
same verified reset and retirement rules) across the tasks it runs for that run; they end with
the process, which Ray ends when the run's driver disconnects (each container ends when the
process attached to it is gone).
"""
from __future__ import annotations

import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..agents.base import Agent
from ..episode.context import Budget
from ..episode.runner import EpisodeOptions, run_episode
from ..errors import CtxevalError
from ..sandbox import provider
from ..sandbox.pool import SandboxPool
from ..tracing.transfer import remote_parent, span_to_record
from .shipping import BundleShipment, land_bundle, pack_folder

NODE_CACHE = Path(tempfile.gettempdir()) / "ctxeval-ray-bundles"


class NodeSetupError(CtxevalError):
    """This node could not take the episode (no engine, no image, the bundle does not land):
    an infrastructure error, tried again elsewhere; never a score."""


@dataclass(frozen=True)
class EpisodeTask:
    """Everything one episode needs on a node, but the bundle (shipped once, beside it)."""

    run_id: str
    episode_id: str
    seed: int
    make_agent: Callable[[], Agent]
    backend: str
    image: str | None = None
    image_hash: str | None = None
    runtime: str | None = None
    budget: Budget | None = None
    probes: bool | None = None
    image_registry: str | None = None  # pull the image from here when missing (never build it)
    reuse: bool = True  # warm sandboxes across this worker's episodes of the run
    reuse_limit: int = 1
    trace_parent: tuple[int, int] | None = None  # the run span's (trace id, span id)
    trace_attributes: dict[str, Any] = field(default_factory=dict)  # the run's attributes for every span


@dataclass(frozen=True)
class EpisodeReturn:
    """What comes back from the node."""

    result: dict[str, Any]
    folder: bytes  # the episode's folder, packed
    spans: list[dict[str, Any]]  # tracing.transfer records
    node: dict[str, str]


def run_episode_task(task: EpisodeTask, shipment: BundleShipment, node: dict[str, str]) -> EpisodeReturn:
    try:
        bundle, prepared = land_bundle(shipment, NODE_CACHE)
        _ensure_image(bundle, task)
    except NodeSetupError:
        raise
    except Exception as exc:
        raise NodeSetupError(f"node {node.get('node_id', '?')[:12]} ({node.get('host')}) cannot run "
                             f"{task.episode_id}: {type(exc).__name__}: {exc}") from exc
    provider, exporter, tracing = _node_tracing(task, node)
    with tempfile.TemporaryDirectory(prefix="ctxeval-ray-episode-") as tmp:
        episode_dir = Path(tmp) / task.episode_id
        pool, grading_pool = _warm_pools(task, bundle)
        options = EpisodeOptions(run_id=task.run_id, episode_id=task.episode_id, seed=task.seed,
                                 backend=task.backend, episode_dir=episode_dir, image=task.image,
                                 image_hash=task.image_hash, runtime=task.runtime, budget=task.budget,
                                 tracing=tracing, trace_parent=remote_parent(task.trace_parent),
                                 probes=task.probes, pool=pool, grading_pool=grading_pool)
        result = run_episode(bundle, task.make_agent(), options, prepared)
        provider.force_flush()
        spans = [span_to_record(span) for span in exporter.get_finished_spans()]
        provider.shutdown()
        return EpisodeReturn(result, pack_folder(episode_dir), spans, node)


WARM_POOLS: dict[str, tuple[SandboxPool, SandboxPool]] = {}  # run id -> this process's (agents', graders') pools


def _warm_pools(task: EpisodeTask, bundle: Any) -> tuple[SandboxPool | None, SandboxPool | None]:
    if not (task.reuse and bundle.reuse_sandbox and provider(task.backend).reusable):
        return None, None
    if task.run_id not in WARM_POOLS:
        for run_id in list(WARM_POOLS):  # this worker served another run before: its sandboxes go
            for old in WARM_POOLS.pop(run_id):
                old.close()
        WARM_POOLS[task.run_id] = (SandboxPool(task.reuse_limit), SandboxPool(task.reuse_limit))
    return WARM_POOLS[task.run_id]


def _ensure_image(bundle: Any, task: EpisodeTask) -> None:
    """The bundle's image in this node's engine, by the driver's input hash: pulled from the run's
    registry when one is given, else built from the bundle when missing."""
    if task.image is None:
        return
    if task.image_registry:
        _pull_image(task.image, task.image_hash, task.image_registry)
        return
    from ..images import ImageBuilder
    ref = ImageBuilder().bundle_image(bundle)
    if ref.input_hash != task.image_hash or ref.tag != task.image:
        raise NodeSetupError(f"this node builds {ref.tag} (input hash {ref.input_hash}) for {bundle.id}, not the "
                             f"driver's {task.image} ({task.image_hash}): the node's ctxeval or base image differs")


def _pull_image(tag: str, input_hash: str | None, registry: str) -> None:
    import docker

    from ..images.builder import bundle_image_hash_ok
    from ..images.push import remote_tag, split_tag
    client = docker.from_env()
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        repository, version = split_tag(remote_tag(registry, tag))
        try:
            pulled = client.images.pull(repository, tag=version)
        except docker.errors.APIError as exc:
            raise NodeSetupError(f"cannot pull {repository}:{version}: {exc.explanation or exc}") from None
        local_repository, local_version = split_tag(tag)
        pulled.tag(local_repository, local_version)
    if input_hash is not None and not bundle_image_hash_ok(client, tag, input_hash):
        raise NodeSetupError(f"{tag} on this node does not carry the driver's input hash {input_hash}")


def _node_tracing(task: EpisodeTask, node: dict[str, str]) -> tuple[Any, Any, Any]:
    """A tracer provider of this task's own, its spans kept in memory for the driver."""
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from .. import __version__
    from ..tracing.setup import MAX_SPAN_ATTRIBUTES
    from ..tracing.spans import Tracing
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=MAX_SPAN_ATTRIBUTES), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("ctxeval", __version__) if task.trace_parent else None
    attributes = {**task.trace_attributes, "ctxeval.node": node.get("node_id", platform.node())}
    return provider, exporter, Tracing(tracer, attributes)


def this_node() -> dict[str, str]:
    """The Ray node this task runs on (called inside the task)."""
    import ray
    context = ray.get_runtime_context()
    return {"node_id": context.get_node_id(), "ip": ray.util.get_node_ip_address(), "host": platform.node()}
