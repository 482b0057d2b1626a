"""ctxeval's spans and their OpenInference attributes.

The hierarchy is run → episode → step → llm | tool (plus a `grade` evaluator span under the
episode). A step is one agent turn: a model call and the actions it chose; an agent without a
model (oracle, scripted actions) gets one step per action.

Model calls run with OpenTelemetry instrumentation suppressed, so an SDK instrumentor a user has
switched on (e.g. OpenInference's OpenAI instrumentor) cannot add a second LLM span for the same
call: ctxeval's `llm` span is the one that counts.
"""
from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator, Sequence

from openinference.instrumentation import suppress_tracing
from openinference.semconv.trace import (MessageAttributes, OpenInferenceSpanKindValues, SpanAttributes,
                                         ToolAttributes, ToolCallAttributes)
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

MAX_ATTRIBUTE_CHARS = 32_000  # one message or output; the JSONL and Phoenix stay readable
KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND

RUN, EPISODE, STEP, LLM, TOOL, GRADE = "run", "episode", "step", "llm", "tool", "grade"


def clip(text: Any) -> str:
    text = text if isinstance(text, str) else json.dumps(text, sort_keys=True, default=str)
    return text if len(text) <= MAX_ATTRIBUTE_CHARS else text[:MAX_ATTRIBUTE_CHARS] + f"…[{len(text)} chars]"


def _attributes(fields: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry takes str/bool/int/float (or lists of one type); None is dropped, the rest JSON."""
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        clean[key] = value if isinstance(value, (str, bool, int, float)) else clip(value)
    return clean


def message_attributes(prefix: str, messages: Sequence[Any]) -> dict[str, Any]:
    """`llm.input_messages.{i}.message.*` for policies.base.Message (or anything with role/content)."""
    fields: dict[str, Any] = {}
    for i, message in enumerate(messages):
        base = f"{prefix}.{i}."
        fields[base + MessageAttributes.MESSAGE_ROLE] = message.role
        fields[base + MessageAttributes.MESSAGE_CONTENT] = clip(message.content or "")
        if getattr(message, "name", None):
            fields[base + MessageAttributes.MESSAGE_NAME] = message.name
        if getattr(message, "tool_call_id", None):
            fields[base + MessageAttributes.MESSAGE_TOOL_CALL_ID] = message.tool_call_id
        for j, call in enumerate(getattr(message, "tool_calls", None) or []):
            call_base = f"{base}{MessageAttributes.MESSAGE_TOOL_CALLS}.{j}."
            fields[call_base + ToolCallAttributes.TOOL_CALL_ID] = call.id
            fields[call_base + ToolCallAttributes.TOOL_CALL_FUNCTION_NAME] = call.name
            fields[call_base + ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON] = clip(call.arguments)
    return fields


class LlmCall:
    """The open `llm` span of one model call; `finish` records the reply and its usage."""

    def __init__(self, span: Span):
        self.span = span

    def finish(self, response: Any, context_tokens: int, full_tokens: int | None) -> None:
        from policies.base import Message
        usage = response.usage
        reply = Message("assistant", response.text, tool_calls=list(response.tool_calls))
        self.span.set_attributes(_attributes({
            **message_attributes(SpanAttributes.LLM_OUTPUT_MESSAGES, [reply]),
            SpanAttributes.OUTPUT_VALUE: clip(response.text or json.dumps([c.as_dict() for c in response.tool_calls])),
            SpanAttributes.LLM_TOKEN_COUNT_PROMPT: usage.prompt_tokens,
            SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: usage.completion_tokens,
            SpanAttributes.LLM_TOKEN_COUNT_TOTAL: usage.prompt_tokens + usage.completion_tokens,
            SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ: usage.cached_tokens,
            SpanAttributes.LLM_COST_TOTAL: round(usage.cost_usd, 8),
            SpanAttributes.LLM_FINISH_REASON: response.finish_reason,
            "ctxeval.context_tokens": context_tokens,
            "ctxeval.full_history_tokens": full_tokens,
        }))

    def cancel(self, reason: str) -> None:
        """The episode's wall-time budget cut the call: no reply; the span is marked and fails."""
        self.span.set_attributes({"ctxeval.cancelled": True, SpanAttributes.OUTPUT_VALUE: clip(reason)})
        self.span.set_status(Status(StatusCode.ERROR, f"cancelled: {reason[:500]}"))


class ToolCall:
    """The open `tool` span of one action; `finish` records what came back."""

    def __init__(self, span: Span):
        self.span = span

    def finish(self, output: Any = None, ok: bool = True, **fields: Any) -> None:
        self.span.set_attributes(_attributes({SpanAttributes.OUTPUT_VALUE: None if output is None else clip(output),
                                              "ctxeval.ok": ok, **{f"ctxeval.{k}": v for k, v in fields.items()}}))
        if not ok:
            self.span.set_status(Status(StatusCode.ERROR, str(fields.get("error") or fields.get("outcome") or "")))


class Tracing:
    """Opens ctxeval's spans on one tracer. Tracing() with no tracer traces nothing."""

    def __init__(self, tracer: trace.Tracer | None = None, attributes: dict[str, Any] | None = None):
        self.tracer = tracer or trace.NoOpTracer()
        self.attributes = attributes or {}  # set on every span (bundle, policy, mode, seed...)
        self._step_open = False

    @property
    def enabled(self) -> bool:
        return not isinstance(self.tracer, trace.NoOpTracer)

    def with_attributes(self, **attributes: Any) -> "Tracing":
        return Tracing(self.tracer, {**self.attributes, **_attributes(attributes)})

    @contextlib.contextmanager
    def span(self, name: str, kind: OpenInferenceSpanKindValues, context: Any = None,
             **attributes: Any) -> Iterator[Span]:
        fields = _attributes({KIND: kind.value, **self.attributes, **attributes})
        with self.tracer.start_as_current_span(name, context=context, attributes=fields,
                                               record_exception=True, set_status_on_exception=True) as span:
            yield span

    def run(self, run_id: str, **attributes: Any):
        return self.span(RUN, OpenInferenceSpanKindValues.CHAIN, **{"ctxeval.run_id": run_id,
                                                                    SpanAttributes.SESSION_ID: run_id, **attributes})

    def episode(self, episode_id: str, context: Any = None, **attributes: Any):
        return self.span(EPISODE, OpenInferenceSpanKindValues.AGENT, context=context,
                         **{"ctxeval.episode_id": episode_id, **attributes})

    @contextlib.contextmanager
    def step(self, number: int | None = None, **attributes: Any) -> Iterator[None]:
        """One agent turn; nested calls inside an open step add nothing."""
        if self._step_open:
            yield
            return
        self._step_open = True
        try:
            with self.span(STEP, OpenInferenceSpanKindValues.CHAIN, **{"ctxeval.step": number, **attributes}):
                yield
        finally:
            self._step_open = False

    @contextlib.contextmanager
    def llm(self, model: str, messages: Sequence[Any], tools: Sequence[Any] | None = None,
            invocation: dict[str, Any] | None = None, summarizer: bool = False,
            probe: bool = False) -> Iterator[LlmCall]:
        provider = model.split(":", 1)[0] if ":" in model else None
        fields = {
            SpanAttributes.LLM_MODEL_NAME: model.split(":", 1)[-1],
            SpanAttributes.LLM_PROVIDER: provider,
            SpanAttributes.LLM_INVOCATION_PARAMETERS: json.dumps(invocation or {}, sort_keys=True),
            SpanAttributes.INPUT_VALUE: clip([{"role": m.role, "content": m.content} for m in messages]),
            SpanAttributes.INPUT_MIME_TYPE: "application/json",
            "ctxeval.model": model, "ctxeval.summarizer": summarizer, "ctxeval.probe": probe,
            **message_attributes(SpanAttributes.LLM_INPUT_MESSAGES, messages),
        }
        for i, tool in enumerate(tools or []):
            fields[f"{SpanAttributes.LLM_TOOLS}.{i}.{ToolAttributes.TOOL_JSON_SCHEMA}"] = json.dumps(
                {"name": tool.name, "description": tool.description, "parameters": tool.parameters}, sort_keys=True)
        with self.span(LLM, OpenInferenceSpanKindValues.LLM, **fields) as span, suppress_tracing():
            yield LlmCall(span)

    @contextlib.contextmanager
    def tool(self, name: str, parameters: Any = None, step: int | None = None) -> Iterator[ToolCall]:
        """An action (exec, a file, a bundle tool...), inside a step of its own if none is open."""
        with self.step(step):
            with self.span(TOOL, OpenInferenceSpanKindValues.TOOL, **{
                    SpanAttributes.TOOL_NAME: name,
                    SpanAttributes.TOOL_PARAMETERS: json.dumps(parameters if parameters is not None else {},
                                                               sort_keys=True, default=str),
                    SpanAttributes.INPUT_VALUE: clip(parameters if parameters is not None else {}),
                    "ctxeval.action_step": step}) as span:
                yield ToolCall(span)

    def grade(self):
        return self.span(GRADE, OpenInferenceSpanKindValues.EVALUATOR)


NO_TRACING = Tracing()
