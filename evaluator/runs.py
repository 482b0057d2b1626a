"""A run: scheduling its episodes (concurrently, up to `max_parallel`), tracing them, and the
library's entry points. The run's folder (run.json, the lock, what a resume finds) is run_files.py's.

Every episode ends up present exactly once: a finished one is kept on resume, an interrupted one is
set aside and run again, and so is one that ended in status "error" (the evaluator, the sandbox or
the model API failed), its failed attempt kept under aborted/.
"""
from __future__ import annotations

import platform
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from opentelemetry import trace

from . import __version__
from .agents.base import Agent
from .atomic import write_json_atomic
from .bundles.data import prepare_data
from .bundles.manifest import Bundle
from .episode.context import Budget
from .errors import CtxevalError
from .executors import DEFAULT_EXECUTOR, EpisodeJob, Execution, Executor, RunHooks, check_executor, create_executor
from .interrupts import Interrupt, RunInterrupted, stop_signals
from .matrix import AgentSpec, RunMatrix, episode_id
from .paths import runs_dir
# The run folder's names, importable from here as before (cli, check.py, tests)
from .run_files import (ABORTED_DIR, EPISODES_DIR, LOCK_FILE, RUN_FILE, RUN_ID_PATTERN,  # noqa: F401
                        SUMMARY_FILE, check_run_id, end_run_file, finished_result, load_run_record,
                        new_run_id, now_stamp, read_json_object, run_lock, set_aside, set_aside_unfinished,
                        summarize, write_run_file)
from .sandbox import options_for, provider
from .sandbox.defaults import DEFAULT_REUSE_EPISODES
from .tracing import PhoenixSettings, RunTracing, start_run_tracing

__all__ = ["EpisodeJob", "RunHooks", "RunSettings", "RunPlan", "execute", "execute_jobs", "matrix_jobs", "run_record",
           "summarize", "load_run_record", "new_run_id", "RUN_FILE", "SUMMARY_FILE", "EPISODES_DIR"]


@dataclass
class RunSettings:
    backend: str
    run_id: str = field(default_factory=new_run_id)
    root: Path | None = None
    runtime: str | None = None
    budget: Budget | None = None
    max_parallel: int = 1
    phoenix: PhoenixSettings | None = None
    probes: bool | None = None  # ask the bundles' probes (None: wherever a bundle declares them)
    reuse: bool = True  # keep warm sandboxes across episodes (a bundle may opt out: sandbox.reuse)
    reuse_limit: int = DEFAULT_REUSE_EPISODES  # episodes one warm sandbox serves before it is retired
    executor: str = DEFAULT_EXECUTOR  # where episodes run: local threads, or Ray tasks (executors/)
    ray_address: str | None = None  # the Ray cluster (None: RAY_ADDRESS, else a local Ray for the run)
    image_registry: str | None = None  # Ray nodes pull the run's images from here (pushed first), not build them

    def __post_init__(self) -> None:
        check_run_id(self.run_id)
        check_executor(self.executor)
        if self.image_registry and self.executor != "ray":
            raise CtxevalError("--image-registry is for --executor ray (the local executor uses this host's images)")
        if self.max_parallel < 1:
            raise CtxevalError("--max-parallel must be at least 1")

    @property
    def run_dir(self) -> Path:
        return (self.root or runs_dir()) / self.run_id


def _clean_leftovers(backend: str, run_id: str, warn: Callable[[str], None] | None) -> None:
    """Sandboxes a killed attempt of this run left behind; and a word about other runs' ones."""
    sandboxes = provider(backend)
    sandboxes.cleanup_leftovers(run_id=run_id)
    others = sandboxes.leftovers(exclude_run=run_id)
    if others and warn:
        expired = sum(o.expired(time.time()) for o in others)
        runs = sorted({o.run or "?" for o in others})
        warn(f"the {backend} backend holds {len(others)} ctxeval container(s) of other runs ({', '.join(runs[:5])}"
             f"{', ...' if len(runs) > 5 else ''}), {expired} past their deadline: `ctxeval clean --expired` "
             f"removes those, `ctxeval clean --run ID` one run's")


def run_record(settings: RunSettings, **fields: Any) -> dict[str, Any]:
    return {"schema_version": 1, "run_id": settings.run_id, "ctxeval_version": __version__,
            "python": sys.version.split()[0], "platform": platform.platform(), "created_at": now_stamp(),
            "backend": settings.backend, "runtime": settings.runtime, "max_parallel": settings.max_parallel,
            "budget": vars(settings.budget) if settings.budget else None,
            "phoenix": settings.phoenix.describe() if settings.phoenix else None,
            "probes": probes_option(settings.probes), "reuse": settings.reuse, "reuse_limit": settings.reuse_limit,
            "executor": settings.executor, **({"ray_address": settings.ray_address} if settings.ray_address else {}),
            **({"image_registry": settings.image_registry} if settings.image_registry else {}),
            **fields}


def probes_option(probes: bool | None) -> str | None:
    """How run.json records --probes: "on", "off", or None (the bundles' default)."""
    return None if probes is None else ("on" if probes else "off")


def execute_jobs(settings: RunSettings, record: dict[str, Any], jobs: list[EpisodeJob],
                 hooks: RunHooks | None = None,
                 warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run every job not finished yet (concurrently), trace it, and write summary.json."""
    hooks = hooks or RunHooks()
    run_dir = settings.run_dir
    ids = [job.episode_id for job in jobs]
    if len(set(ids)) != len(ids):
        raise CtxevalError("two episodes of the run would share an id: " + ", ".join(sorted({i for i in ids if ids.count(i) > 1})))
    options_for(settings.backend, runtime=settings.runtime or None)  # an option the backend does not take: now
    with run_lock(run_dir):
        executor = create_executor(settings.executor, settings.ray_address, settings.max_parallel)
        try:
            where = executor.start()
            return _run_locked(settings, {**record, "execution": where}, jobs, hooks, warn, executor)
        finally:
            executor.close()


def _run_locked(settings: RunSettings, record: dict[str, Any], jobs: list[EpisodeJob], hooks: RunHooks,
                warn: Callable[[str], None] | None, executor: Executor) -> list[dict[str, Any]]:
    run_dir, ids = settings.run_dir, [job.episode_id for job in jobs]
    old = read_json_object(run_dir / RUN_FILE)
    if old is not None:
        record = {**record, "created_at": old.get("created_at", record.get("created_at"))}
    write_run_file(run_dir, {**record, "episodes": ids, "status": "running"})
    if settings.executor == "local":
        _clean_leftovers(settings.backend, settings.run_id, warn)
    tracing = start_run_tracing(run_dir, settings.phoenix, warn=warn)
    try:
        with stop_signals(lambda signum: executor.interrupted(signum, settings.run_id)) as interrupt:
            results = _execute(settings, jobs, hooks, tracing, interrupt, executor)
        write_json_atomic(run_dir / SUMMARY_FILE, summarize(list(results.values())))
        if interrupt.is_set():
            end_run_file(run_dir, "interrupted", interrupt.signum)
            raise RunInterrupted(interrupt.signum, settings.run_id, len(results), len(jobs))
        end_run_file(run_dir, "finished")
    except OSError as exc:  # e.g. the disk under runs/ is full: stop cleanly, resumable
        raise CtxevalError(f"cannot write under {run_dir} ({exc.strerror or exc}); finished episodes are kept: "
                           f"free space, then `ctxeval run --resume {settings.run_id}`") from exc
    finally:
        if not tracing.shutdown() and warn:
            warn("; ".join(tracing.warnings))
    return [results[job.episode_id] for job in jobs]


def _resume_state(run_dir: Path, jobs: list[EpisodeJob],
                  hooks: RunHooks) -> tuple[dict[str, dict[str, Any]], list[EpisodeJob]]:
    """The results of the episodes a previous attempt finished, and the jobs still to run (an
    interrupted or failed attempt of theirs set aside, so they start clean)."""
    done: dict[str, dict[str, Any]] = {}
    pending: list[EpisodeJob] = []
    for job in jobs:
        episode_dir = run_dir / EPISODES_DIR / job.episode_id
        result = finished_result(episode_dir)
        if result is not None and result.get("status") == "error":
            result = None  # the evaluator, sandbox or API failed last time: try again (the old try is kept)
        if result is not None:
            done[job.episode_id] = result
            if hooks.on_episode:
                hooks.on_episode(result, True)
            continue
        if episode_dir.exists():  # an interrupted attempt: keep it aside, start clean
            set_aside(run_dir, episode_dir)
        pending.append(job)
    return done, pending


def _execute(settings: RunSettings, jobs: list[EpisodeJob], hooks: RunHooks, tracing: RunTracing,
             interrupt: Interrupt, executor: Executor) -> dict[str, dict[str, Any]]:
    """Every finished episode's result by id (all of them, unless the run was interrupted)."""
    run_dir = settings.run_dir
    done, pending = _resume_state(run_dir, jobs, hooks)
    with tracing.tracing.run(settings.run_id, **{"ctxeval.episodes": len(jobs),
                                                  "ctxeval.resumed_episodes": len(done),
                                                  "ctxeval.max_parallel": settings.max_parallel,
                                                  "ctxeval.executor": settings.executor}) as run_span:
        execution = Execution(run_id=settings.run_id, run_dir=run_dir, backend=settings.backend, hooks=hooks,
                              tracing=tracing.tracing, interrupt=interrupt,
                              trace_parent=trace.set_span_in_context(run_span), runtime=settings.runtime,
                              budget=settings.budget, probes=settings.probes, max_parallel=settings.max_parallel,
                              reuse=settings.reuse, reuse_limit=settings.reuse_limit, accept_spans=tracing.accept,
                              image_registry=settings.image_registry)
        executor.execute(execution, pending, done)
        run_span.set_attribute("ctxeval.successes", sum(r["success"] for r in done.values()))
        if interrupt.is_set():
            run_span.set_attribute("ctxeval.interrupted", signal.Signals(interrupt.signum).name)
    return done


# -- the matrix of a command-line run ---------------------------------------------------------

def matrix_jobs(matrix: RunMatrix, bundles: dict[str, Bundle], images: dict[str, tuple[str | None, str | None]],
                record: Path | None = None) -> list[EpisodeJob]:
    """One job per cell; agents are made per episode (no state shared between threads)."""
    prepared = {name: prepare_data(bundle) for name, bundle in bundles.items()}
    many = matrix.size > 1
    # one prototype per arm: validates the policy and model now, before anything runs, and names episodes
    described = {spec: spec.create().describe() for spec in matrix.agents}
    jobs = []
    for bundle_name, spec, seed in matrix.cells():
        bundle = bundles[bundle_name]
        eid = episode_id(bundle.id, described[spec], seed)
        cassette = record.with_name(f"{record.stem}-{eid}{record.suffix}") if (record and many) else record
        image, image_hash = images.get(bundle_name, (None, None))
        jobs.append(EpisodeJob(bundle, seed, eid, _factory(spec, cassette), prepared[bundle_name], image, image_hash))
    return jobs


def _factory(spec: AgentSpec, cassette: Path | None) -> Callable[[], Agent]:
    return lambda: spec.create(record=cassette)


# -- one agent over seeds (the library's simplest entry point) --------------------------------

@dataclass
class RunPlan:
    """One bundle, one agent instance, several seeds, run one after another."""

    bundle: Bundle
    agent: Agent
    seeds: list[int]
    backend: str
    run_id: str = field(default_factory=new_run_id)
    root: Path | None = None
    runtime: str | None = None
    budget: Budget | None = None
    phoenix: PhoenixSettings | None = None
    probes: bool | None = None

    def __post_init__(self) -> None:
        check_run_id(self.run_id)

    @property
    def settings(self) -> RunSettings:
        return RunSettings(backend=self.backend, run_id=self.run_id, root=self.root, runtime=self.runtime,
                           budget=self.budget, phoenix=self.phoenix, probes=self.probes)

    @property
    def run_dir(self) -> Path:
        return self.settings.run_dir

    def episode_id(self, seed: int) -> str:
        return episode_id(self.bundle.id, self.agent.describe(), seed)


def execute(plan: RunPlan, image: str | None, image_hash: str | None,
            on_episode: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    prepared = prepare_data(plan.bundle)
    jobs = [EpisodeJob(plan.bundle, seed, plan.episode_id(seed), lambda: plan.agent, prepared, image, image_hash)
            for seed in plan.seeds]
    record = run_record(plan.settings, agent=plan.agent.describe(), seeds=plan.seeds,
                        images={plan.bundle.id: {"image": image, "image_hash": image_hash}},
                        bundles={plan.bundle.id: {"version": plan.bundle.version, "path": str(plan.bundle.root)}})
    hooks = RunHooks(on_episode=(lambda result, _resumed: on_episode(result)) if on_episode else None)
    return execute_jobs(plan.settings, record, jobs, hooks)
