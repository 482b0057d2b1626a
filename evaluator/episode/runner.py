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
from ..bundles.data import PreparedData
from ..bundles.manifest import Bundle
from ..errors import BudgetExceeded, CtxevalError, SandboxError
from ..hashing import hash_tree
from ..interrupts import EpisodeInterrupted
from ..jsonschemas import validate
from ..models.base import ModelError
from ..sandbox import Sandbox, SandboxLimits, SandboxOptions, SandboxSpec, create_sandbox, options_for
from ..sandbox.artefacts import read_regular
from ..sandbox.defaults import LABEL_EPISODE, LABEL_RUN
from ..tracing.spans import NO_TRACING, Tracing
from .context import (STOP_ACTIONS_DONE, STOP_AGENT_ERROR, STOP_MODEL_ERROR, STOP_SANDBOX_DIED, Budget,
                      EpisodeContext, check_output)
from .events import EventLog
from .grading import GradeOutcome, grade_artefacts
from .probe_recall import probe_recall
from .probes import ProbeRunner

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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


WATCHDOG_GRACE_SECONDS = 60.0  # the host watchdog fires this long after the episode's wall budget


def agent_limits(bundle: Bundle, budget: Budget | None = None) -> SandboxLimits:
    """The agent sandbox's limits; its wall clock is the episode's budget plus a grace for
    copy-out (the host watchdog), and the sandbox ends itself a while after that."""
    limits = bundle.limits
    wall = (budget or Budget()).resolve(bundle).wall_seconds
    return SandboxLimits(cpus=limits.cpus, memory_mb=limits.memory_mb, pids=limits.pids,
                         tmpfs_mb=limits.tmpfs_mb, workspace_mb=limits.workspace_cap_mb,
                         exec_timeout_seconds=limits.exec_timeout_seconds,
                         output_bytes=limits.output_bytes, wall_seconds=wall + WATCHDOG_GRACE_SECONDS)


def judge(bundle: Bundle, grade: GradeOutcome, output_valid: bool) -> tuple[bool, bool]:
    """(success, target_met) under the bundle's success rule."""
    target = bundle.target
    score = grade.score
    target_met = grade.valid and target.meets_target(score)
    rule = target.success.rule
    if rule in ("relative_improvement", "threshold"):
        return target_met, target_met
    if rule == "valid_output":
        return output_valid and grade.valid, target_met
    if rule == "relative_improvement_or_valid_output":
        return target_met or (output_valid and grade.valid), target_met
    if rule == "all_checks":
        checks = (grade.grade or {}).get("checks") or []
        return grade.valid and bool(checks) and all(c["passed"] for c in checks), target_met
    raise CtxevalError(f"unknown success rule {rule!r}")


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

    status: str = "completed"
    error: str | None = None
    stop_reason: str = STOP_ACTIONS_DONE
    output: dict[str, Any] = field(default_factory=lambda: {"path": None, "present": False, "valid": False,
                                                            "errors": ["not read"]})
    grade: GradeOutcome = field(default_factory=lambda: GradeOutcome(None, ["not graded"]))
    artefacts: list[str] = field(default_factory=list)
    copied: bool = False
    ctx: EpisodeContext | None = None

    def fail(self, error: str) -> None:
        self.status, self.error = "error", error


def _run_agent(agent: Agent, ctx: EpisodeContext, state: EpisodeState) -> None:
    try:
        agent.run(ctx)
        state.stop_reason = ctx.stop_reason or STOP_ACTIONS_DONE
    except BudgetExceeded as exc:
        state.stop_reason = ctx.stop_reason or exc.reason
        if state.stop_reason == STOP_SANDBOX_DIED:  # only the engine or someone outside can remove it
            state.fail("the sandbox died mid-episode (removed from outside, or the Docker engine restarted); "
                       "`ctxeval run --resume` runs it again")
    except ModelError as exc:  # retries exhausted: recorded; the workspace is still graded
        state.stop_reason = STOP_MODEL_ERROR
        state.fail(str(exc))
    except CtxevalError as exc:
        state.stop_reason = STOP_AGENT_ERROR
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
            state.stop_reason = STOP_SANDBOX_DIED
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
                                      sandbox_options)
        grade = state.grade
        grade_span.set_attributes({"ctxeval.grade_valid": grade.valid, "output.value": json.dumps(grade.grade)[:4000],
                                   **({"ctxeval.score": grade.score} if grade.score is not None else {})})
    events.emit("graded", grade=state.grade.grade, errors=state.grade.errors)


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
    spec = SandboxSpec(image=options.image, limits=agent_limits(bundle, options.budget), labels=labels,
                       tools_dir=bundle.tools_dir, data_dir=prepared.public)
    sandbox = create_sandbox(options.backend, spec, sandbox_options)
    state = EpisodeState(output={"path": bundle.output_path, "present": False, "valid": False, "errors": ["not read"]})
    sandbox_events: list[dict[str, Any]] = []
    try:
        sandbox.start()
        events.emit("episode_start", episode_id=options.episode_id, bundle=bundle.id, seed=options.seed,
                    agent=agent.describe(), sandbox=sandbox.describe())
        sandbox.reset(bundle.starter_dir)
        probes = ProbeRunner(bundle.probes, enabled=options.probes is not False)
        state.ctx = EpisodeContext(bundle, sandbox, events, options.seed, budget=options.budget,
                                   public_dir=prepared.public, tracing=tracing, probes=probes)
        _check_interrupt(options)
        _run_agent(agent, state.ctx, state)
        _check_interrupt(options)
        events.emit("agent_end", stop_reason=state.stop_reason)
        if state.stop_reason != STOP_SANDBOX_DIED:
            _collect(bundle, sandbox, events, state, options.episode_dir / ARTEFACTS_DIR)
        sandbox_events = list(sandbox.events)
        sandbox.stop()  # nothing of the agent's outlives the copy: grading sees only the copied files
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
        sandbox_events = sandbox_events or list(sandbox.events)
        sandbox.stop()
    result = _result(bundle, agent, options, state, sandbox, sandbox_events, started_at, started)
    validate(result, "episode_result", options.episode_dir / RESULT_FILE)
    events.emit("episode_end", success=result["success"], score=state.grade.score, status=state.status)
    events.close()
    write_json_atomic(options.episode_dir / RESULT_FILE, result)
    return result


def _best_score(bundle: Bundle, iterations: list[dict[str, Any]], graded: float | None) -> float | None:
    """The best score the agent saw on its own iterations (e.g. cross-validation), else the grade."""
    best = None
    for value in (i["score"] for i in iterations if i.get("score") is not None):
        if best is None or bundle.target.better(value, best):
            best = value
    return graded if best is None else best


def _probe_results(ctx: EpisodeContext | None) -> dict[str, Any]:
    """The probes' records and recall (absent when the episode asked none)."""
    if ctx is None or not ctx.probes.enabled:
        return {}
    records = ctx.probes.finish(ctx.metrics.llm_calls)
    return {"probes": records, "probe_recall": probe_recall(records)}


def _result(bundle: Bundle, agent: Agent, options: EpisodeOptions, state: EpisodeState, sandbox: Sandbox,
            sandbox_events: list[dict[str, Any]], started_at: str, started: float) -> dict[str, Any]:
    grade, ctx = state.grade, state.ctx
    success, target_met = judge(bundle, grade, state.output["valid"]) if state.status == "completed" else (False, False)
    metrics = ctx.metrics if ctx is not None else None
    wall = time.monotonic() - started
    return {
        "schema_version": 1, "episode_id": options.episode_id, "run_id": options.run_id,
        "bundle": {"id": bundle.id, "version": bundle.version, "metric": bundle.target.metric,
                   "direction": bundle.target.direction, "bundle_hash": hash_tree(bundle.root),
                   "grader_hash": hash_tree(bundle.grader_dir), "image": options.image,
                   "image_hash": options.image_hash},
        "agent": {**agent.describe(), "probes": ctx.probes.state if ctx else "off"}, "seed": options.seed,
        "sandbox": {"backend": sandbox.backend, "isolated": sandbox.isolated},
        "status": state.status, "stop_reason": state.stop_reason, "error": state.error, "success": success,
        "target_met": target_met, "score": grade.score,
        "best_score": _best_score(bundle, metrics.iterations if metrics else [], grade.score),
        "baseline": bundle.target.baseline,
        "relative_improvement": bundle.target.relative_improvement(grade.score) if grade.score is not None else None,
        "output": state.output, "grade": grade.grade, "grade_errors": grade.errors,
        "outcomes": dict(ctx.outcomes) if ctx else {},
        "metrics": (metrics.as_record(wall) if metrics else
                    {"steps": 0, "llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0,
                     "summarizer_tokens": 0, "cost_usd": 0.0, "wall_seconds": wall,
                     "model_seconds": 0.0, "sandbox_seconds": 0.0}),
        **_probe_results(ctx),
        "artefacts": state.artefacts, "sandbox_events": sandbox_events,
        "started_at": started_at, "finished_at": _now(),
    }
