"""The local executor: the run's episodes in threads on this host, up to --max-parallel at once,
with the run's warm sandboxes (one pool for agents, one for graders that only read files)."""
from __future__ import annotations

import platform
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from ..episode.runner import run_episode
from ..interrupts import EpisodeInterrupted, Interrupt
from ..run_files import set_aside_unfinished
from ..sandbox import provider
from ..sandbox.pool import SandboxPool
from .base import EpisodeJob, Execution, Executor, RunHooks

INTERRUPT_GRACE_SECONDS = 20.0  # how long interrupted episodes get to end once their sandboxes are gone


class LocalExecutor(Executor):
    name = "local"

    def start(self) -> dict[str, Any]:
        return {"name": self.name, "node": platform.node()}

    def execute(self, execution: Execution, pending: list[EpisodeJob], done: dict[str, dict[str, Any]]) -> None:
        reuse = execution.reuse and provider(execution.backend).reusable
        sandboxes, graders = (SandboxPool(execution.reuse_limit), SandboxPool(execution.reuse_limit)) if reuse \
            else (None, None)
        tracing = execution.tracing.with_attributes(**{"ctxeval.node": platform.node()})

        def work(job: EpisodeJob) -> dict[str, Any]:
            if execution.hooks.on_start:
                execution.hooks.on_start(job)
            warm = job.bundle.reuse_sandbox
            options = execution.options(job, tracing=tracing, pool=sandboxes if warm else None,
                                        grading_pool=graders if warm else None)
            return run_episode(job.bundle, job.make_agent(), options, job.prepared)

        with ThreadPoolExecutor(max_workers=execution.max_parallel, thread_name_prefix="episode") as pool:
            futures: dict[Future, EpisodeJob] = {pool.submit(work, job): job for job in pending}
            try:
                collect_results(futures, done, execution.hooks, execution.interrupt)
            except BaseException:
                for future in futures:
                    future.cancel()  # queued episodes never start; running ones finish and are kept
                raise
            finally:
                pool.shutdown(wait=True)
                for warm_pool in (sandboxes, graders):
                    if warm_pool is not None:
                        warm_pool.close()
            if execution.interrupt.is_set():
                for future, job in futures.items():
                    if not future.done() or future.cancelled() or future.exception() is not None:
                        set_aside_unfinished(execution.run_dir, job.episode_id)  # a torn attempt, as a resume would


def collect_results(futures: dict[Future, EpisodeJob], done: dict[str, dict[str, Any]], hooks: RunHooks,
                    interrupt: Interrupt) -> None:
    """Wait for the episodes; once interrupted, cancel the queued ones and let the running ones end
    (their sandboxes are gone) within INTERRUPT_GRACE_SECONDS."""
    remaining = set(futures)
    grace_until = None
    while remaining:
        if interrupt.is_set() and grace_until is None:
            for future in remaining:
                future.cancel()
            grace_until = time.monotonic() + INTERRUPT_GRACE_SECONDS
        if grace_until is not None and time.monotonic() > grace_until:
            return
        finished, remaining = wait(remaining, timeout=0.25, return_when=FIRST_COMPLETED)
        for future in finished:
            if future.cancelled():
                continue
            if isinstance(future.exception(), EpisodeInterrupted):
                continue
            result = future.result()  # run_episode records failures; this raises only on bugs
            done[result["episode_id"]] = result
            if hooks.on_episode:
                hooks.on_episode(result, False)
