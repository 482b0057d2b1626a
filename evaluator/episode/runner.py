"""Run one episode end to end and write its schema-valid result atomically."""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..atomic import write_json_atomic
from ..bundles.bundle_lib import bundle_hash
from ..bundles.data import PreparedData
from ..bundles.grading_helper import grader_hash
from ..bundles.manifest import Bundle
from ..errors import CtxevalError, EpisodeEnded, SandboxError
from ..interrupts import EpisodeInterrupted
from ..jsonschemas import validate
from ..models.base import ModelError
from ..sandbox import Sandbox, SandboxOptions, SandboxSpec, create_sandbox, options_for, provider
from ..sandbox.artefacts import read_regular
from ..sandbox.base import folder_digest
from ..sandbox.defaults import LABEL_EPISODE, LABEL_RUN
from ..sandbox.pool import Lease, SandboxPool, pool_key, retire_reason
from ..tracing.spans import NO_TRACING, Tracing
from .context import Budget, EpisodeContext, EpisodeMetrics, check_output
from .events import EventLog
from .grading import GradeOutcome, grade_artefacts
from .judging import best_score, judge
from .limits import agent_limits
from .mounts import bundle_scratch
from .probe_recall import probe_recall
from .probes import ProbeRunner
from .result import BundleIdentity, EpisodeResult, OutputCheck, SandboxIdentity, Status, StopReason

if TYPE_CHECKING:  # the runner drives agents; agents never need the runner
    from ..agents.base import Agent

RESULT_FILE = "result.json"
EVENTS_FILE = "events.jsonl"
ARTEFACTS_DIR = "workspace"
OUTPUT_READ_BYTES = 1024 * 1024


@dataclass(frozen=True)
class EpisodeOptions:
    run_id: str
    episode_id: str
    seed: int
    backend: str
    episode_dir: Path
    image: str | None = None
    image_hash: str | None = None
    runtime: str | None = None
    budget: Budget | None = None
    tracing: Tracing | None = None  # the run's tracing (None: no spans)
    trace_parent: Any = None  # the OpenTelemetry context of the run span (episodes run in worker threads)
    interrupt: Any = None  # an interrupts.Interrupt: once set, the episode ends without a result
    probes: bool | None = None  # ask the bundle's probes (None: on when the bundle declares any)
    pool: SandboxPool | None = None  # the run's warm sandboxes (None: a fresh sandbox for this episode)
    grading_pool: SandboxPool | None = None  # the run's warm grading sandboxes (graders that only read files)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def episode_attributes(bundle: Bundle, agent: Agent, seed: int) -> dict[str, Any]:
    """ctxeval's own attributes, set on every span of the episode."""
    described = agent.describe()
    return {"ctxeval.bundle": bundle.id, "ctxeval.bundle_version": bundle.version,
            "ctxeval.agent": described.get("kind"), "ctxeval.mode": described.get("mode"),
            "ctxeval.model": described.get("model"),
            "ctxeval.policy": (described.get("policy") or {}).get("name"), "ctxeval.seed": seed}


def run_episode(bundle: Bundle, agent: Agent, options: EpisodeOptions, prepared: PreparedData,
                sandbox_options: SandboxOptions | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run one episode inside its `episode` span; the span carries the outcome. `sandbox_options`:
    the provider's options (typed, or a mapping it validates); `options.runtime` is added to them."""
    tracing = (options.tracing or NO_TRACING).with_attributes(**episode_attributes(bundle, agent, options.seed))
    with tracing.episode(options.episode_id, context=options.trace_parent) as span:
        result = _run_episode(bundle, agent, options, prepared, sandbox_options, tracing)
        metrics = result["metrics"]
        span.set_attributes({k: v for k, v in {
            "ctxeval.status": result["status"], "ctxeval.stop_reason": result["stop_reason"],
            "ctxeval.success": result["success"], "ctxeval.score": result["score"],
            "ctxeval.steps": metrics["steps"], "ctxeval.llm_calls": metrics["llm_calls"],
            "llm.token_count.prompt": metrics["prompt_tokens"],
            "llm.token_count.completion": metrics["completion_tokens"],
            "ctxeval.cost_usd": metrics["cost_usd"], "output.value": f"score={result['score']} "
                                                                     f"success={result['success']}"}.items()
            if v is not None})
    return result


@dataclass
class EpisodeState:
    """What an episode has produced so far; every step fills in its part, whatever fails."""

    status: Status = Status.COMPLETED
    error: str | None = None
    stop_reason: StopReason | str = StopReason.ACTIONS_DONE
    output: dict[str, Any] = field(default_factory=lambda: {"path": None, "present": False, "valid": False,
                                                            "errors": ["not read"]})
    grade: GradeOutcome = field(default_factory=lambda: GradeOutcome(None, ["not graded"]))
    artefacts: list[str] = field(default_factory=list)
    copied: bool = False
    ctx: EpisodeContext | None = None

    def fail(self, error: str) -> None:
        self.status, self.error = Status.ERROR, error


def _run_agent(agent: Agent, ctx: EpisodeContext, state: EpisodeState) -> None:
    try:
        agent.run(ctx)
        state.stop_reason = ctx.stop_reason or StopReason.ACTIONS_DONE
    except EpisodeEnded as exc:  # a budget, the sandbox gone, or the episode's own end
        state.stop_reason = ctx.stop_reason or exc.reason
        if state.stop_reason == StopReason.SANDBOX_DIED:  # only the engine or someone outside can remove it
            state.fail("the sandbox died mid-episode (removed from outside, or the Docker engine restarted); "
                       "`ctxeval run --resume` runs it again")
    except ModelError as exc:  # retries exhausted: recorded; the workspace is still graded
        state.stop_reason = StopReason.MODEL_ERROR
        state.fail(str(exc))
    except CtxevalError as exc:
        state.stop_reason = StopReason.AGENT_ERROR
        state.fail(str(exc))


def _collect(bundle: Bundle, sandbox: Sandbox, events: EventLog, state: EpisodeState, dest: Path) -> None:
    """Quiesce, copy the workspace out (vetted on the host), and read the output from the copy."""
    ctx = state.ctx
    assert ctx is not None
    priority = [p for p in (bundle.grader_submission, bundle.output_path) if p]
    try:
        copy = sandbox.copy_out(dest, priority=priority)
    except SandboxError as exc:  # e.g. the engine could not read it: recorded, graded as empty
        ctx.outcomes["artefacts_refused"] += 1
        events.emit("artefacts_refused", error=str(exc))
        if not sandbox.alive():  # removed from outside: no fault of the agent's, run it again
            state.stop_reason = StopReason.SANDBOX_DIED
            state.fail(f"the sandbox died before its workspace was copied out ({exc}); "
                       "`ctxeval run --resume` runs it again")
        return
    state.artefacts, state.copied = sorted(copy.copied), True
    if copy.skipped_total:
        ctx.outcomes["artefact_skipped"] += copy.skipped_total
        events.emit("artefacts_skipped", skipped=copy.skipped, total=copy.skipped_total)
    if copy.refused:
        ctx.outcomes["artefacts_refused"] += 1
        events.emit("artefacts_refused", error=copy.refused)
    state.output = check_output_file(bundle, dest)


def check_output_file(bundle: Bundle, workspace: Path) -> dict[str, Any]:
    """The agent's structured output as copied out: a regular file, never a link or FIFO."""
    data = read_regular(workspace / bundle.output_path, OUTPUT_READ_BYTES)
    return check_output(bundle, None if data is None else data.decode("utf-8", "replace"))


def _grade(bundle: Bundle, options: EpisodeOptions, prepared: PreparedData, labels: dict[str, str],
           sandbox_options: SandboxOptions, tracing: Tracing, events: EventLog, state: EpisodeState) -> None:
    artefacts = options.episode_dir / ARTEFACTS_DIR if state.copied else None
    with tracing.grade() as grade_span:
        state.grade = grade_artefacts(bundle, options.backend, options.image, artefacts, prepared, labels,
                                      sandbox_options, pool=options.grading_pool)
        grade = state.grade
        grade_span.set_attributes({"ctxeval.grade_valid": grade.valid, "output.value": json.dumps(grade.grade)[:4000],
                                   **({"ctxeval.score": grade.score} if grade.score is not None else {})})
    events.emit("graded", grade=state.grade.grade, errors=state.grade.errors)


def _verified_reset(sandbox: Sandbox, bundle: Bundle) -> None:
    """Restore the starter and check the workspace's digest against the starter's."""
    digest = sandbox.reset(bundle.starter_dir)
    if digest is not None and digest != folder_digest(bundle.starter_dir):
        raise SandboxError(f"the reset left the workspace different from the starter (digest {digest[:12]})")


def _check_interrupt(options: EpisodeOptions) -> None:
    if options.interrupt is not None and options.interrupt.is_set():
        raise EpisodeInterrupted(options.episode_id)


def _run_episode(bundle: Bundle, agent: Agent, options: EpisodeOptions, prepared: PreparedData,
                 given_options: SandboxOptions | Mapping[str, Any] | None, tracing: Tracing) -> dict[str, Any]:
    sandbox_options = options_for(options.backend, given_options, runtime=options.runtime or None)
    options.episode_dir.mkdir(parents=True, exist_ok=True)
    events = EventLog(options.episode_dir / EVENTS_FILE)
    labels = {LABEL_RUN: options.run_id, LABEL_EPISODE: options.episode_id}
    started_at, started = _now(), time.monotonic()
    pool = options.pool or SandboxPool(max_episodes=1)  # no reuse: a sandbox per episode, the same way
    spec = SandboxSpec(image=options.image, limits=agent_limits(bundle, options.budget), labels=labels,
                       tools_dir=bundle.tools_dir, data_dir=prepared.public, episodes=pool.max_episodes,
                       scratch=bundle_scratch(bundle))
    state = EpisodeState(output={"path": bundle.output_path, "present": False, "valid": False, "errors": ["not read"]})
    sandbox_events: list[dict[str, Any]] = []
    held = identity = None
    try:
        held = pool.acquire(pool_key(options.backend, spec, sandbox_options),
                            lambda: create_sandbox(options.backend, spec, sandbox_options),
                            lambda started: _verified_reset(started, bundle))
        sandbox = held.sandbox
        events.emit("episode_start", episode_id=options.episode_id, bundle=bundle.id, seed=options.seed,
                    agent=agent.describe(), sandbox={**sandbox.describe(), "reused": held.reused,
                                                     "episodes_before": held.episodes_before})
        probes = ProbeRunner(bundle.probes, enabled=options.probes is not False)
        state.ctx = EpisodeContext(bundle, sandbox, events, options.seed, budget=options.budget,
                                   public_dir=prepared.public, tracing=tracing, probes=probes)
        _check_interrupt(options)
        _run_agent(agent, state.ctx, state)
        _check_interrupt(options)
        events.emit("agent_end", stop_reason=state.stop_reason)
        if state.stop_reason != StopReason.SANDBOX_DIED:
            _collect(bundle, sandbox, events, state, options.episode_dir / ARTEFACTS_DIR)
        sandbox_events = list(sandbox.events)
        # nothing of the agent's outlives the copy (every agent process was killed): grading sees only
        # the copied files, and the sandbox is stopped or parked, reset before it serves again
        identity, held = _release(pool, held, state, sandbox_events), None
        _grade(bundle, options, prepared, labels, sandbox_options, tracing, events, state)
        _check_interrupt(options)
    except EpisodeInterrupted:
        events.emit("episode_interrupted")
        events.close()
        raise
    except Exception as exc:  # the sandbox or evaluator failed: record it, lose nothing
        state.fail(f"{type(exc).__name__}: {exc}")
        events.emit("episode_error", error=state.error, traceback=traceback.format_exc()[-4000:])
    finally:
        if held is not None:
            sandbox_events = sandbox_events or list(held.sandbox.events)
            identity = _release(pool, held, state, sandbox_events, failed=True)
    identity = identity or SandboxIdentity(backend=options.backend, isolated=provider(options.backend).isolated)
    return _record(_result(bundle, agent, options, state, identity, sandbox_events, started_at, started),
                   options, events)


def _release(pool: SandboxPool, held: Lease, state: EpisodeState, sandbox_events: list[dict[str, Any]],
             failed: bool = False) -> SandboxIdentity:
    """Give the sandbox back to the pool (parked, or retired when the episode may have left state)."""
    outcomes = dict(state.ctx.outcomes) if state.ctx else {}
    failed = failed or state.stop_reason == StopReason.SANDBOX_DIED or state.error is not None
    retired = pool.release(held, retire_reason(outcomes, sandbox_events, failed))
    return SandboxIdentity(backend=held.sandbox.backend, isolated=held.sandbox.isolated, reused=held.reused,
                           episodes_before=held.episodes_before, retired=retired)


def _record(result: EpisodeResult, options: EpisodeOptions, events: EventLog) -> dict[str, Any]:
    """Check the result against its schema, end the event log, write result.json atomically."""
    record = result.to_record()
    validate(record, "episode_result", options.episode_dir / RESULT_FILE)
    events.emit("episode_end", success=result.success, score=result.score, status=result.status)
    events.close()
    write_json_atomic(options.episode_dir / RESULT_FILE, record)
    return record


def _probe_results(ctx: EpisodeContext | None) -> dict[str, Any]:
    """The probes' records and recall (absent when the episode asked none)."""
    if ctx is None or not ctx.probes.enabled:
        return {}
    records = ctx.probes.finish(ctx.metrics.llm_calls)
    return {"probes": records, "probe_recall": probe_recall(records)}


def _result(bundle: Bundle, agent: Agent, options: EpisodeOptions, state: EpisodeState, sandbox: SandboxIdentity,
            sandbox_events: list[dict[str, Any]], started_at: str, started: float) -> EpisodeResult:
    grade, ctx = state.grade, state.ctx
    completed = state.status == Status.COMPLETED
    success, target_met = judge(bundle, grade, state.output["valid"]) if completed else (False, False)
    metrics = ctx.metrics if ctx is not None else EpisodeMetrics()
    target = bundle.target
    return EpisodeResult(
        episode_id=options.episode_id, run_id=options.run_id, bundle=_bundle_identity(bundle, options),
        agent={**agent.describe(), "probes": ctx.probes.state if ctx else "off"}, seed=options.seed,
        sandbox=sandbox,
        status=state.status, stop_reason=state.stop_reason, error=state.error, success=success,
        target_met=target_met, score=grade.score, best_score=best_score(bundle, metrics.iterations, grade.score),
        baseline=target.baseline,
        relative_improvement=target.relative_improvement(grade.score) if grade.score is not None else None,
        output=OutputCheck(**state.output), grade=grade.grade, grade_errors=grade.errors,
        outcomes=dict(ctx.outcomes) if ctx else {}, metrics=metrics.totals(time.monotonic() - started),
        **_probe_results(ctx), memory=ctx.memory.snapshot() if ctx and ctx.memory is not None else None,
        artefacts=state.artefacts, sandbox_events=sandbox_events,
        started_at=started_at, finished_at=_now())


def _bundle_identity(bundle: Bundle, options: EpisodeOptions) -> BundleIdentity:
    return BundleIdentity(id=bundle.id, version=bundle.version, metric=bundle.target.metric,
                          direction=bundle.target.direction, bundle_hash=bundle_hash(bundle),
                          grader_hash=grader_hash(bundle), image=options.image, image_hash=options.image_hash)
