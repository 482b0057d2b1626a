"""Where a run's episodes execute.

- `local` (the default): threads on this host, up to --max-parallel at once, each against this
  host's sandbox backend, writing straight into the run folder.
- `ray`: one Ray task per episode on the nodes of a Ray cluster that advertise a Docker engine
  through the `ctxeval_sandbox` resource; each task returns its episode's folder, events and
  spans, and the driver writes the run folder exactly as the local executor does. Ray is an
  optional dependency (`pip install 'ctxeval[ray]'`), imported only when this executor is chosen.

runs.py owns the run (its folder, lock, tracing, resume, summary); an executor only turns pending
episode jobs into finished results.
"""
from __future__ import annotations

from ..errors import CtxevalError
from .base import EpisodeJob, Execution, Executor, RunHooks

EXECUTORS = ("local", "ray")
DEFAULT_EXECUTOR = "local"

__all__ = ["EXECUTORS", "DEFAULT_EXECUTOR", "EpisodeJob", "Execution", "Executor", "RunHooks", "create_executor",
           "check_executor"]


def check_executor(name: str) -> str:
    if name not in EXECUTORS:
        raise CtxevalError(f"unknown executor {name!r} (one of: {', '.join(EXECUTORS)})")
    return name


def create_executor(name: str, ray_address: str | None = None, max_parallel: int = 1) -> Executor:
    """The executor called `name`. For ray, `ray_address` is the cluster (default RAY_ADDRESS, else
    a local Ray started for the run, offering `max_parallel` sandboxes)."""
    if check_executor(name) == "local":
        from .local import LocalExecutor
        return LocalExecutor()
    from .ray_cluster import RayExecutor
    return RayExecutor(ray_address, local_slots=max_parallel)
