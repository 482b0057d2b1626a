"""What an agent may do in an episode, each action logged, timed and counted against the budget."""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bundles.manifest import Bundle, ToolSpec
from ..errors import BudgetExceeded, CallCancelled, CtxevalError, EpisodeEnded
from ..jsonschemas import data_violations, violations
from ..models.base import Usage  # noqa: F401 (re-exported: its old home)
from ..sandbox.base import ExecOutcome, ExecResult, Sandbox
from ..tracing.spans import NO_TRACING, LlmCall, ToolCall, Tracing
from .events import EventLog
from .probes import ProbeRunner
from .result import COUNTER_NAMES, EpisodeCounters, EpisodeTotals, StopReason

PROBE_SECONDS = 120.0  # a probe's own deadline; its time is given back to the episode's wall budget
LLM_CALL_CANCELLED = "llm_call_cancelled"  # the event, and the outcome counted, of a call the wall budget cut


@dataclass(frozen=True)
class Budget:
    """Per-episode limits; None falls back to the bundle's manifest."""

    max_steps: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    wall_seconds: float | None = None

    def resolve(self, bundle: Bundle) -> "Budget":
        limits = bundle.limits
        return Budget(max_steps=self.max_steps or limits.max_steps,
                      max_tokens=self.max_tokens if self.max_tokens is not None else limits.max_tokens,
                      max_cost_usd=self.max_cost_usd if self.max_cost_usd is not None else limits.max_cost_usd,
                      wall_seconds=self.wall_seconds or limits.wall_seconds)


@dataclass
class EpisodeMetrics(EpisodeCounters):
    """The counters as the episode runs, with the per-call series its result keeps."""

    context_tokens: list[int] = field(default_factory=list)
    full_history_tokens: list[int] = field(default_factory=list)
    iterations: list[dict[str, Any]] = field(default_factory=list)
    context_maps: list[dict[str, Any]] = field(default_factory=list)  # one per agent model call (spec: Context maps)
    probe_tokens: int = 0
    probe_cost_usd: float = 0.0
    probe_seconds: float = 0.0

    @property
    def compression_ratio(self) -> float | None:
        """Tokens sent over the tokens full history would have sent, across all calls."""
        full = sum(self.full_history_tokens)
        return round(sum(self.context_tokens) / full, 4) if full else None

    def totals(self, wall_seconds: float) -> EpisodeTotals:
        """The result's `metrics`: costs rounded as result.json has always kept them."""
        counters = {name: getattr(self, name) for name in COUNTER_NAMES}
        for name in ("model_seconds", "sandbox_seconds"):
            counters[name] = round(counters[name], 4)
        counters["cost_usd"] = round(self.cost_usd, 6)
        series = {"context_tokens": self.context_tokens, "full_history_tokens": self.full_history_tokens,
                  "compression_ratio": self.compression_ratio, "iterations": self.iterations,
                  "context_maps": self.context_maps, "probe_tokens": self.probe_tokens,
                  "probe_cost_usd": round(self.probe_cost_usd, 6), "probe_seconds": round(self.probe_seconds, 4)}
        return EpisodeTotals(**counters, wall_seconds=round(wall_seconds, 4), series=series)


def check_output(bundle: Bundle, text: str | None) -> dict[str, Any]:
    """The agent's structured output, validated against the bundle's output schema."""
    record = {"path": bundle.output_path, "present": text is not None, "valid": False, "errors": []}
    if text is None:
        record["errors"] = [f"{bundle.output_path} was not written"]
        return record
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: not JSON, an integer of > 4300 digits
        record["errors"] = [f"{bundle.output_path}: not JSON: {exc}"]
        return record
    problems = (data_violations(document, bundle.output_path)
                or violations(document, bundle.output_schema, bundle.output_path))
    record["errors"] = [str(p) for p in problems]
    record["valid"] = not problems
    return record


@dataclass
class ToolResult:
    ok: bool
    output: Any
    error: str | None
    exec: ExecResult | None

    def value(self, key: str) -> Any:
        """A field of a successful tool's JSON result (None otherwise)."""
        return self.output.get(key) if self.ok and isinstance(self.output, dict) else None

    def observation(self) -> str:
        if self.ok:
            return self.output if isinstance(self.output, str) else json.dumps(self.output, sort_keys=True)
        return f"ERROR: {self.error}"


class EpisodeContext:
    """The agent's only handle on the episode. Every method is one step."""

    def __init__(self, bundle: Bundle, sandbox: Sandbox, events: EventLog, seed: int,
                 budget: "Budget | None" = None, public_dir: Path | None = None,
                 tracing: Tracing | None = None, probes: "ProbeRunner | None" = None):
        self.bundle = bundle
        self.probes = probes or ProbeRunner([], enabled=False)
        self.trace = (tracing or NO_TRACING).with_attributes()  # its own copy: it tracks the open step
        self.sandbox = sandbox
        self.events = events
        self.seed = seed
        self.budget = (budget or Budget()).resolve(bundle)
        self.max_steps = self.budget.max_steps
        self.wall_seconds = self.budget.wall_seconds
        self.public_dir = public_dir
        self.metrics = EpisodeMetrics()
        self.outcomes: Counter[str] = Counter()
        self.started = time.monotonic()
        self.submitted: dict[str, Any] | None = None
        self.stop_reason: str | None = None
        self.memory: Any = None  # the agent's MemoryStore (episode/memory.py) when its policy wants one

    # -- budget ------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _begin_step(self, kind: str) -> int:
        if self.submitted is not None:
            raise EpisodeEnded(StopReason.SUBMITTED)
        if self.metrics.steps >= self.max_steps:
            raise BudgetExceeded(StopReason.MAX_STEPS)
        self.check_budget()
        self.metrics.steps += 1
        return self.metrics.steps

    def check_budget(self) -> None:
        """Raise BudgetExceeded when tokens, cost or wall time are spent (checked before every call)."""
        used = self.metrics.prompt_tokens + self.metrics.completion_tokens + self.metrics.summarizer_tokens
        if self.budget.max_tokens is not None and used >= self.budget.max_tokens:
            raise BudgetExceeded(StopReason.TOKENS)
        if self.budget.max_cost_usd is not None and self.metrics.cost_usd >= self.budget.max_cost_usd:
            raise BudgetExceeded(StopReason.COST)
        if self.elapsed() >= self.wall_seconds:
            raise BudgetExceeded(StopReason.WALL_TIME)

    def count_step(self, action: str, **detail: Any) -> int:
        """A step that touches no sandbox (a clarification, a rejected tool call)."""
        step = self._begin_step(action)
        with self.trace.tool(action, detail, step) as span:
            span.finish(ok=action != "rejected_tool_call", **{k: v for k, v in detail.items() if k == "error"})
        self.events.emit("step", step=step, action=action, **detail)
        return step

    def check_output(self) -> dict[str, Any]:
        """The agent's structured output as it is now, validated against the bundle's output schema."""
        data = self.sandbox.read_file(f"{self.sandbox.workspace_path}/{self.bundle.output_path}")
        return check_output(self.bundle, None if data is None else data.decode("utf-8", "replace"))

    def output_valid(self) -> bool:
        return self.check_output()["valid"]

    def _record_exec(self, step: int, kind: str, detail: dict[str, Any], result: ExecResult) -> None:
        self.metrics.sandbox_seconds += result.duration_s
        self.outcomes[result.outcome] += 1
        self.events.emit("step", step=step, action=kind, **detail, result=result.to_record())
        if result.outcome in (ExecOutcome.SANDBOX_DIED, ExecOutcome.WALL_TIME):
            if result.outcome == ExecOutcome.SANDBOX_DIED:
                raise EpisodeEnded(StopReason.SANDBOX_DIED)
            raise BudgetExceeded(StopReason.WALL_TIME)

    @staticmethod
    def _finish_span(span: ToolCall, result: ExecResult) -> None:
        span.finish(result.stdout[-4000:] if result.ok else (result.stderr or result.stdout)[-4000:], ok=result.ok,
                    outcome=result.outcome, exit_code=result.exit_code, seconds=round(result.duration_s, 4))

    def remaining_wall(self) -> float:
        return max(1.0, self.wall_seconds - self.elapsed())

    def wall_deadline(self) -> float:
        """When the wall-time budget runs out, as a time.monotonic() value."""
        return self.started + self.wall_seconds

    # -- actions -----------------------------------------------------------------
    def exec(self, command: str, timeout: float | None = None) -> ExecResult:
        step = self._begin_step("exec")
        limit = min(timeout or self.bundle.limits.exec_timeout_seconds, self.remaining_wall())
        with self.trace.tool("exec", {"command": command, "timeout": timeout}, step) as span:
            result = self.sandbox.exec(command, timeout=limit)
            self._finish_span(span, result)
            self._record_exec(step, "exec", {"command": command}, result)
        return result

    def write_file(self, path: str, content: str | bytes) -> ExecResult:
        step = self._begin_step("write_file")
        data = content.encode() if isinstance(content, str) else content
        with self.trace.tool("write_file", {"path": path, "bytes": len(data)}, step) as span:
            result = self.sandbox.write_file(path, data)
            self._finish_span(span, result)
            self._record_exec(step, "write_file", {"path": path, "bytes": len(data)}, result)
        return result

    def read_file(self, path: str, max_bytes: int = 256 * 1024) -> str | None:
        step = self._begin_step("read_file")
        started = time.monotonic()
        with self.trace.tool("read_file", {"path": path}, step) as span:
            data = self.sandbox.read_file(path, max_bytes=max_bytes)
            span.finish(None if data is None else data[:4000].decode("utf-8", "replace"), ok=data is not None,
                        bytes=len(data or b""))
        self.metrics.sandbox_seconds += time.monotonic() - started
        self.events.emit("step", step=step, action="read_file", path=path,
                         found=data is not None, bytes=len(data or b""))
        return None if data is None else data.decode("utf-8", errors="replace")

    def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        step = self._begin_step("tool")
        spec = self.bundle.tool(name)
        if spec is None:
            return self._tool_error(step, name, arguments, f"unknown tool {name!r}; tools: "
                                    f"{', '.join(t.name for t in self.bundle.tools) or 'none'}")
        problems = violations(arguments, spec.parameters, f"arguments of {name}")
        if problems:
            return self._tool_error(step, name, arguments, "; ".join(f"{p.json_path}: {p.message}" for p in problems))
        return self._run_tool(step, spec, arguments)

    def _tool_error(self, step: int, name: str, arguments: Any, error: str) -> ToolResult:
        with self.trace.tool(name, arguments, step) as span:
            span.finish(ok=False, error=error)
        self.outcomes["tool_rejected"] += 1
        self.events.emit("step", step=step, action="tool", tool=name, arguments=arguments, error=error)
        return ToolResult(False, None, error, None)

    def _run_tool(self, step: int, spec: ToolSpec, arguments: dict[str, Any]) -> ToolResult:
        timeout = min(spec.timeout_seconds, self.remaining_wall())
        with self.trace.tool(spec.name, arguments, step) as span:
            result = self.sandbox.exec(spec.command, stdin=json.dumps(arguments).encode(), timeout=timeout)
            self._finish_span(span, result)
            self._record_exec(step, "tool", {"tool": spec.name, "arguments": arguments}, result)
        if result.exit_code != 0:
            reason = result.stderr.strip() or result.stdout.strip() or result.outcome
            return ToolResult(False, None, f"{spec.name} failed ({result.outcome}): {reason[-2000:]}", result)
        try:
            return ToolResult(True, json.loads(result.stdout), None, result)
        except json.JSONDecodeError:
            return ToolResult(True, result.stdout, None, result)

    def submit(self, payload: dict[str, Any] | None = None) -> None:
        step = self._begin_step("submit")
        with self.trace.tool("submit", payload or {}, step) as span:
            span.finish("submitted")
        self.submitted = payload or {}
        self.stop_reason = StopReason.SUBMITTED
        self.events.emit("step", step=step, action="submit", payload=self.submitted)

    def record_iteration(self, arguments: dict[str, Any], score: float | None, ok: bool,
                         iteration: int | None = None) -> None:
        """One experiment (a configuration applied and scored): the score-by-iteration series.
        Iteration 0 is the starter's baseline, where the bundle defines one."""
        number = iteration if iteration is not None else \
            (self.metrics.iterations[-1]["iteration"] + 1 if self.metrics.iterations else 1)
        self.metrics.iterations.append({"iteration": number, "step": self.metrics.steps,
                                        "arguments": arguments, "score": score, "ok": ok})

    # -- model accounting ----------------------------------------------------------
    def call_model(self, model: Any, messages: list[Any], *, context_tokens: int, full_tokens: int | None = None,
                   tools: list[Any] | None = None, response_schema: dict[str, Any] | None = None,
                   summarizer: bool = False) -> Any:
        """One model call: traced as an `llm` span, timed, counted against the budget, and bounded by
        the wall-time budget: a call still running when it runs out is cancelled, recorded as such,
        and ends the episode (BudgetExceeded wall_time: the episode is still graded)."""
        deadline = self.wall_deadline()
        seconds_left = deadline - time.monotonic()
        if seconds_left <= 0:
            raise BudgetExceeded(StopReason.WALL_TIME)
        options: dict[str, Any] = {"deadline": deadline}
        if tools is not None:
            options["tools"] = tools
        if response_schema is not None:
            options["response_schema"] = response_schema
        with self.trace.llm(model.name, messages, tools,
                            invocation={"response_schema": response_schema is not None,
                                        "tools": [t.name for t in tools or []]},
                            summarizer=summarizer) as span:
            started = time.monotonic()
            try:
                response = model.complete(messages, **options)
            except CallCancelled as exc:
                self._record_cancelled_call(model.name, span, exc, time.monotonic() - started, seconds_left, summarizer)
                raise BudgetExceeded(StopReason.WALL_TIME) from exc
            seconds = time.monotonic() - started
            span.finish(response, context_tokens, full_tokens)
        self.record_llm_call(response.usage, seconds, context_tokens, summarizer=summarizer, full_tokens=full_tokens)
        return response

    def ask_probes(self, model: Any, messages: list[Any]) -> None:
        """Before the agent's next model call: the probes due, asked with the context it will get."""
        self.probes.ask(self, model, self.metrics.llm_calls + 1, messages)

    def plant_facts(self, content: str) -> str:
        """An observation answering the agent's latest model call, with the facts due planted first."""
        return self.probes.plant(self.metrics.llm_calls, content)

    def call_probe(self, model: Any, messages: list[Any], probe_id: str) -> Any:
        """A probe's side call: outside the episode (no step, no budget, its tokens and cost billed
        apart, its time given back to the wall budget); a failed call is None, never a crash."""
        started = time.monotonic()
        with self.trace.llm(model.name, messages, None, invocation={"probe": probe_id}, probe=True) as span:
            try:
                response = model.complete(messages, deadline=started + PROBE_SECONDS)
                span.finish(response, 0, None)
            except CtxevalError as exc:  # a cancelled call, or a model error with its retries spent
                span.cancel(str(exc))
                self.events.emit("probe_error", probe=probe_id, error=str(exc)[:2000])
                response = None
        seconds = time.monotonic() - started
        self.started += seconds
        self.metrics.probe_seconds += seconds
        if response is not None:
            self.metrics.probe_tokens += response.usage.prompt_tokens + response.usage.completion_tokens
            self.metrics.probe_cost_usd += response.usage.cost_usd
        return response

    def record_context_map(self, built: Any) -> None:
        """The context map of one agent model call (a policy's BuiltContext): which history turns
        it kept, masked, summarised or dropped, and its size against full history's."""
        maps = self.metrics.context_maps
        maps.append({"call": len(maps) + 1, "states": built.turn_states, "tokens": built.tokens,
                     "full_tokens": built.full_tokens, "compression_ratio": round(built.compression_ratio, 4)})

    def record_llm_call(self, usage: Usage, seconds: float, context_tokens: int, summarizer: bool = False,
                        full_tokens: int | None = None) -> None:
        if summarizer:
            self.metrics.summarizer_tokens += usage.prompt_tokens + usage.completion_tokens
        else:
            self.metrics.llm_calls += 1
            self.metrics.prompt_tokens += usage.prompt_tokens
            self.metrics.completion_tokens += usage.completion_tokens
            self.metrics.cached_tokens += usage.cached_tokens
            self.metrics.context_tokens.append(context_tokens)
            self.metrics.full_history_tokens.append(full_tokens if full_tokens is not None else context_tokens)
        self.metrics.cost_usd += usage.cost_usd
        self.metrics.model_seconds += seconds

    def _record_cancelled_call(self, model_name: str, span: LlmCall, exc: CallCancelled, seconds: float,
                               seconds_left: float, summarizer: bool) -> None:
        """A call the wall-time budget cut: its time counts; it has no reply and no usage."""
        self.metrics.model_seconds += seconds
        self.outcomes[LLM_CALL_CANCELLED] += 1
        span.cancel(str(exc))
        self.events.emit(LLM_CALL_CANCELLED, model=model_name, summarizer=summarizer, seconds=round(seconds, 3),
                         seconds_left=round(seconds_left, 3), attempts=exc.attempts, reason=str(exc))
