"""Run one episode end to end and write its schema-valid result atomically."""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..agents.base import Agent
from ..atomic import write_json_atomic
from ..bundles.data import PreparedData
from ..bundles.manifest import Bundle
from ..errors import BudgetExceeded, CtxevalError, SandboxError
from ..hashing import hash_tree
from ..jsonschemas import validate
from ..sandbox import SandboxLimits, SandboxSpec, create_sandbox
from ..sandbox.docker import LABEL_EPISODE, LABEL_RUN
from ..models.base import ModelError
from ..tracing.spans import NO_TRACING, Tracing
from .context import (STOP_ACTIONS_DONE, STOP_AGENT_ERROR, STOP_MODEL_ERROR, STOP_SANDBOX_DIED, Budget,
                      EpisodeContext)
from .events import EventLog
from .grading import GradeOutcome, grade_workspace

RESULT_FILE = "result.json"
EVENTS_FILE = "events.jsonl"
ARTEFACTS_DIR = "workspace"


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def agent_limits(bundle: Bundle) -> SandboxLimits:
    limits = bundle.limits
    return SandboxLimits(cpus=limits.cpus, memory_mb=limits.memory_mb, pids=limits.pids,
                         tmpfs_mb=limits.tmpfs_mb, workspace_mb=limits.workspace_cap_mb,
                         exec_timeout_seconds=limits.exec_timeout_seconds,
                         output_bytes=limits.output_bytes, wall_seconds=limits.wall_seconds + 60)


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
                sandbox_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one episode inside its `episode` span; the span carries the outcome."""
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


def _run_episode(bundle: Bundle, agent: Agent, options: EpisodeOptions, prepared: PreparedData,
                 sandbox_options: dict[str, Any] | None, tracing: Tracing) -> dict[str, Any]:
    sandbox_options = dict(sandbox_options or {})
    if options.runtime:
        sandbox_options["runtime"] = options.runtime
    options.episode_dir.mkdir(parents=True, exist_ok=True)
    events = EventLog(options.episode_dir / EVENTS_FILE)
    labels = {LABEL_RUN: options.run_id, LABEL_EPISODE: options.episode_id}
    started_at, started = _now(), time.monotonic()
    spec = SandboxSpec(image=options.image, limits=agent_limits(bundle), labels=labels,
                       tools_dir=bundle.tools_dir, data_dir=prepared.public)
    sandbox = create_sandbox(options.backend, spec, **sandbox_options)
    status, error, stop_reason = "completed", None, STOP_ACTIONS_DONE
    output = {"path": bundle.output_path, "present": False, "valid": False, "errors": ["not read"]}
    grade = GradeOutcome(None, ["not graded"])
    artefacts: list[str] = []
    ctx: EpisodeContext | None = None
    try:
        sandbox.start()
        events.emit("episode_start", episode_id=options.episode_id, bundle=bundle.id, seed=options.seed,
                    agent=agent.describe(), sandbox=sandbox.describe())
        sandbox.reset(bundle.starter_dir)
        ctx = EpisodeContext(bundle, sandbox, events, options.seed, budget=options.budget,
                             public_dir=prepared.public, tracing=tracing)
        try:
            agent.run(ctx)
            stop_reason = ctx.stop_reason or STOP_ACTIONS_DONE
        except BudgetExceeded as exc:
            stop_reason = ctx.stop_reason or exc.reason
            if stop_reason == STOP_SANDBOX_DIED:  # PID 1 is immune to the agent: something outside killed it
                status, error = "error", ("the sandbox died mid-episode (killed from outside, or the Docker "
                                          "engine restarted); `ctxeval run --resume` runs it again")
        except ModelError as exc:  # retries exhausted: recorded; the workspace is still graded
            stop_reason, status, error = STOP_MODEL_ERROR, "error", str(exc)
        except CtxevalError as exc:
            stop_reason, status, error = STOP_AGENT_ERROR, "error", str(exc)
        events.emit("agent_end", stop_reason=stop_reason)
        sandbox.quiesce()  # nothing the agent started may change the workspace from here on
        output = ctx.check_output()
        try:
            artefacts = sandbox.copy_out(options.episode_dir / ARTEFACTS_DIR)
            skipped = getattr(sandbox, "skipped_artefacts", [])
            if skipped:
                ctx.outcomes["artefact_skipped"] += len(skipped)
                events.emit("artefacts_skipped", skipped=skipped)
        except SandboxError as exc:  # e.g. a workspace too big to copy: recorded, still graded
            ctx.outcomes["artefacts_refused"] += 1
            events.emit("artefacts_refused", error=str(exc))
        with tracing.grade() as grade_span:
            grade = grade_workspace(bundle, options.backend, options.image, sandbox.workspace_handle(), prepared,
                                    labels, **sandbox_options)
            grade_span.set_attributes({"ctxeval.grade_valid": grade.valid, "output.value": json.dumps(grade.grade)[:4000],
                                       **({"ctxeval.score": grade.score} if grade.score is not None else {})})
        events.emit("graded", grade=grade.grade, errors=grade.errors)
    except Exception as exc:  # the sandbox or evaluator failed: record it, lose nothing
        status, error = "error", f"{type(exc).__name__}: {exc}"
        events.emit("episode_error", error=error, traceback=traceback.format_exc()[-4000:])
    finally:
        sandbox_events = list(getattr(sandbox, "events", []))
        sandbox.stop()
    success, target_met = judge(bundle, grade, output["valid"]) if status == "completed" else (False, False)
    metrics = ctx.metrics if ctx is not None else None
    iterations = metrics.iterations if metrics else []
    best = None  # the best score the agent saw on its own iterations (e.g. cross-validation)
    for value in (i["score"] for i in iterations if i.get("score") is not None):
        if best is None or bundle.target.better(value, best):
            best = value
    if best is None:
        best = grade.score
    result = {
        "schema_version": 1, "episode_id": options.episode_id, "run_id": options.run_id,
        "bundle": {"id": bundle.id, "version": bundle.version, "metric": bundle.target.metric,
                   "direction": bundle.target.direction, "bundle_hash": hash_tree(bundle.root),
                   "grader_hash": hash_tree(bundle.grader_dir), "image": options.image,
                   "image_hash": options.image_hash},
        "agent": agent.describe(), "seed": options.seed,
        "sandbox": {"backend": sandbox.backend, "isolated": sandbox.isolated},
        "status": status, "stop_reason": stop_reason, "error": error, "success": success,
        "target_met": target_met, "score": grade.score, "best_score": best,
        "baseline": bundle.target.baseline,
        "relative_improvement": bundle.target.relative_improvement(grade.score) if grade.score is not None else None,
        "output": output, "grade": grade.grade, "grade_errors": grade.errors,
        "outcomes": dict(ctx.outcomes) if ctx else {},
        "metrics": (metrics.as_record(time.monotonic() - started) if metrics else
                    {"steps": 0, "llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0,
                     "summarizer_tokens": 0, "cost_usd": 0.0, "wall_seconds": time.monotonic() - started,
                     "model_seconds": 0.0, "sandbox_seconds": 0.0}),
        "artefacts": artefacts, "sandbox_events": sandbox_events,
        "started_at": started_at, "finished_at": _now(),
    }
    validate(result, "episode_result", options.episode_dir / RESULT_FILE)
    events.emit("episode_end", success=success, score=grade.score, status=status)
    events.close()
    write_json_atomic(options.episode_dir / RESULT_FILE, result)
    return result
