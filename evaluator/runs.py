"""A run: a folder with its manifest (run.json), one folder per episode, traces and a summary.

Episodes run concurrently up to `max_parallel`. A finished episode is one whose result.json
exists (written atomically, last); anything else found on resume is an interrupted attempt, moved
aside under aborted/ and run again, so every episode ends up present exactly once. An episode
that ended in status "error" (the evaluator, the sandbox or the model API failed) is run again
on resume too, its failed attempt kept under aborted/.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import re
import secrets
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from opentelemetry import trace

from . import __version__
from .agents.base import Agent
from .atomic import write_json_atomic
from .bundles.data import PreparedData, prepare_data
from .bundles.manifest import Bundle
from .episode.context import Budget
from .episode.runner import RESULT_FILE, EpisodeOptions, run_episode
from .errors import CtxevalError
from .interrupts import EpisodeInterrupted, Interrupt, RunInterrupted, stop_signals
from .matrix import AgentSpec, RunMatrix, episode_id
from .paths import runs_dir
from .sandbox import options_for, provider
from .sandbox.base import stop_sandboxes
from .tracing import PhoenixSettings, RunTracing, start_run_tracing

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
LOCK_FILE = "run.lock"
EPISODES_DIR = "episodes"
ABORTED_DIR = "aborted"
INTERRUPT_GRACE_SECONDS = 20.0  # how long interrupted episodes get to end once their sandboxes are gone
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise CtxevalError(f"run id {run_id!r} must match {RUN_ID_PATTERN.pattern} (letters, digits, _ . -)")
    return run_id


@dataclass
class EpisodeJob:
    bundle: Bundle
    seed: int
    episode_id: str
    make_agent: Callable[[], Agent]
    prepared: PreparedData
    image: str | None = None
    image_hash: str | None = None


@dataclass
class RunHooks:
    """Progress callbacks (called from worker threads)."""

    on_start: Callable[[EpisodeJob], None] | None = None
    on_episode: Callable[[dict[str, Any], bool], None] | None = None  # (result, resumed)


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

    def __post_init__(self) -> None:
        check_run_id(self.run_id)
        if self.max_parallel < 1:
            raise CtxevalError("--max-parallel must be at least 1")

    @property
    def run_dir(self) -> Path:
        return (self.root or runs_dir()) / self.run_id


def finished_result(episode_dir: Path) -> dict[str, Any] | None:
    path = episode_dir / RESULT_FILE
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, OSError):  # torn, garbled or unreadable: not finished
        return None
    return result if isinstance(result, dict) and "episode_id" in result else None


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Deterministic for the same finished episodes, whatever order or attempts produced them."""
    ordered = sorted(results, key=lambda r: r["episode_id"])

    def block(items: list[dict[str, Any]]) -> dict[str, Any]:
        scores = [r["score"] for r in items if r["score"] is not None]
        return {"episodes": len(items), "successes": sum(r["success"] for r in items),
                "errors": sum(r["status"] == "error" for r in items),
                "mean_score": round(sum(scores) / len(scores), 10) if scores else None}

    arms: dict[str, list[dict[str, Any]]] = {}
    for result in ordered:
        agent = result["agent"]
        label = " ".join(str(p) for p in (result["bundle"]["id"], agent.get("mode") or agent["kind"],
                                          agent.get("model"), (agent.get("policy") or {}).get("name")) if p)
        arms.setdefault(label, []).append(result)
    from .analysis.probes import summary_entry  # an arm's probe_recall block, where it had probes
    return {**block(ordered), "episode_ids": [r["episode_id"] for r in ordered],
            "arms": {label: {**block(items), **summary_entry(items)} for label, items in sorted(arms.items())}}


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One process per run at a time; the kernel drops the lock when the holder dies (even SIGKILL)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CtxevalError(f"run {run_dir.name} is being executed by another process") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def _read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when it is missing, garbled or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, OSError):
        return None
    return value if isinstance(value, dict) else None


def _write_run_file(run_dir: Path, record: dict[str, Any]) -> None:
    """run.json: written once, then only gains an entry per attempt (resumes)."""
    path = run_dir / RUN_FILE
    attempts = []
    if path.exists():
        previous = _read_json_object(path)
        if previous is not None and isinstance(previous.get("attempts"), list):
            attempts = previous["attempts"]
    attempts.append({"started_at": _now(), "pid": os.getpid()})
    write_json_atomic(path, {**record, "attempts": attempts})


def _set_aside(run_dir: Path, episode_dir: Path) -> None:
    aborted = run_dir / ABORTED_DIR / f"{episode_dir.name}-{secrets.token_hex(3)}"
    aborted.parent.mkdir(parents=True, exist_ok=True)
    episode_dir.rename(aborted)


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


def _end_run_file(run_dir: Path, status: str, signum: int | None = None) -> None:
    """Record how this attempt ended in run.json (its last attempt entry, and the run's status)."""
    record = _read_json_object(run_dir / RUN_FILE)
    if record is None:
        return
    attempts = record.get("attempts") if isinstance(record.get("attempts"), list) else []
    if attempts and isinstance(attempts[-1], dict):
        attempts[-1].update(ended_at=_now(), outcome=status,
                            **({"signal": signal.Signals(signum).name} if signum else {}))
    write_json_atomic(run_dir / RUN_FILE, {**record, "status": status, "attempts": attempts})


def run_record(settings: RunSettings, **fields: Any) -> dict[str, Any]:
    return {"schema_version": 1, "run_id": settings.run_id, "ctxeval_version": __version__,
            "python": sys.version.split()[0], "platform": platform.platform(), "created_at": _now(),
            "backend": settings.backend, "runtime": settings.runtime, "max_parallel": settings.max_parallel,
            "budget": vars(settings.budget) if settings.budget else None,
            "phoenix": settings.phoenix.describe() if settings.phoenix else None,
            "probes": probes_option(settings.probes), **fields}


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
        old = _read_json_object(run_dir / RUN_FILE)
        if old is not None:
            record = {**record, "created_at": old.get("created_at", record.get("created_at"))}
        _write_run_file(run_dir, {**record, "episodes": ids, "status": "running"})
        _clean_leftovers(settings.backend, settings.run_id, warn)
        tracing = start_run_tracing(run_dir, settings.phoenix, warn=warn)
        try:
            with stop_signals(lambda signum: stop_sandboxes(settings.run_id)) as interrupt:
                results = _execute(settings, jobs, hooks, tracing, interrupt)
            write_json_atomic(run_dir / SUMMARY_FILE, summarize(list(results.values())))
            if interrupt.is_set():
                _end_run_file(run_dir, "interrupted", interrupt.signum)
                raise RunInterrupted(interrupt.signum, settings.run_id, len(results), len(jobs))
            _end_run_file(run_dir, "finished")
        except OSError as exc:  # e.g. the disk under runs/ is full: stop cleanly, resumable
            raise CtxevalError(f"cannot write under {run_dir} ({exc.strerror or exc}); finished episodes are kept: "
                               f"free space, then `ctxeval run --resume {settings.run_id}`") from exc
        finally:
            if not tracing.shutdown() and warn:
                warn("; ".join(tracing.warnings))
    return [results[job.episode_id] for job in jobs]


def _execute(settings: RunSettings, jobs: list[EpisodeJob], hooks: RunHooks, tracing: RunTracing,
             interrupt: Interrupt) -> dict[str, dict[str, Any]]:
    """Every finished episode's result by id (all of them, unless the run was interrupted)."""
    run_dir = settings.run_dir
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
            _set_aside(run_dir, episode_dir)
        pending.append(job)
    with tracing.tracing.run(settings.run_id, **{"ctxeval.episodes": len(jobs),
                                                  "ctxeval.resumed_episodes": len(done),
                                                  "ctxeval.max_parallel": settings.max_parallel}) as run_span:
        parent = trace.set_span_in_context(run_span)

        def work(job: EpisodeJob) -> dict[str, Any]:
            if hooks.on_start:
                hooks.on_start(job)
            options = EpisodeOptions(run_id=settings.run_id, episode_id=job.episode_id, seed=job.seed,
                                     backend=settings.backend, episode_dir=run_dir / EPISODES_DIR / job.episode_id,
                                     image=job.image, image_hash=job.image_hash, runtime=settings.runtime,
                                     budget=settings.budget, tracing=tracing.tracing, trace_parent=parent,
                                     probes=settings.probes,
                                     interrupt=interrupt)
            return run_episode(job.bundle, job.make_agent(), options, job.prepared)

        with ThreadPoolExecutor(max_workers=settings.max_parallel, thread_name_prefix="episode") as pool:
            futures: dict[Future, EpisodeJob] = {pool.submit(work, job): job for job in pending}
            try:
                _collect_results(futures, done, hooks, interrupt)
            except BaseException:
                for future in futures:
                    future.cancel()  # queued episodes never start; running ones finish and are kept
                raise
            if interrupt.is_set():
                for future, job in futures.items():
                    if not future.done() or future.cancelled() or future.exception() is not None:
                        episode_dir = run_dir / EPISODES_DIR / job.episode_id
                        if episode_dir.exists() and finished_result(episode_dir) is None:
                            _set_aside(run_dir, episode_dir)  # a torn attempt, as a resume would
        run_span.set_attribute("ctxeval.successes", sum(r["success"] for r in done.values()))
        if interrupt.is_set():
            run_span.set_attribute("ctxeval.interrupted", signal.Signals(interrupt.signum).name)
    return done


def _collect_results(futures: dict[Future, EpisodeJob], done: dict[str, dict[str, Any]], hooks: RunHooks,
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


def load_run_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.exists():
        raise CtxevalError(f"no run to resume at {run_dir} (no {RUN_FILE})")
    record = _read_json_object(path)
    if record is None:
        raise CtxevalError(f"{path} is not a JSON object; the run cannot be resumed")
    if not isinstance(record.get("matrix"), dict):
        raise CtxevalError(f"{path} has no matrix: the run was not started by `ctxeval run` and cannot be "
                           "resumed from the command line")
    try:
        RunMatrix.from_record(record["matrix"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CtxevalError(f"{path}: $.matrix is damaged ({type(exc).__name__}: {exc}); the run cannot be "
                           "resumed") from None
    return record


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
