"""Spans that end in another process (an episode on a Ray node) as plain records, and back.

The node traces its episode with its own tracer provider, under the driver's run span (the
parent's ids travel with the task); its finished spans come back as records and the driver's
run exports them as its own (RunTracing.accept), with the driver's resource.
"""
from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags


def parent_ids(context: Any) -> tuple[int, int] | None:
    """(trace id, span id) of the span current in an OpenTelemetry context (None: no span)."""
    span_context = trace.get_current_span(context).get_span_context()
    return (span_context.trace_id, span_context.span_id) if span_context.is_valid else None


def remote_parent(ids: tuple[int, int] | None) -> Any:
    """A context whose current span is the (remote) span with these ids: new spans become its children."""
    if ids is None:
        return None
    parent = SpanContext(trace_id=ids[0], span_id=ids[1], is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


def span_to_record(span: ReadableSpan) -> dict[str, Any]:
    context, parent = span.get_span_context(), span.parent
    return {"name": span.name, "trace_id": context.trace_id, "span_id": context.span_id,
            "parent_span_id": parent.span_id if parent else None, "kind": span.kind.value,
            "start_time": span.start_time, "end_time": span.end_time, "attributes": dict(span.attributes or {}),
            "events": [{"name": e.name, "timestamp": e.timestamp, "attributes": dict(e.attributes or {})}
                       for e in span.events],
            "status": [span.status.status_code.value, span.status.description],
            "scope": [span.instrumentation_scope.name, span.instrumentation_scope.version]
            if span.instrumentation_scope else ["ctxeval", None]}


def span_from_record(record: dict[str, Any], resource: Resource) -> ReadableSpan:
    flags = TraceFlags(TraceFlags.SAMPLED)
    context = SpanContext(record["trace_id"], record["span_id"], is_remote=False, trace_flags=flags)
    parent = (SpanContext(record["trace_id"], record["parent_span_id"], is_remote=False, trace_flags=flags)
              if record.get("parent_span_id") else None)
    code, description = record["status"]
    return ReadableSpan(name=record["name"], context=context, parent=parent, resource=resource,
                        attributes=record["attributes"], kind=SpanKind(record["kind"]),
                        events=[Event(e["name"], e["attributes"], e["timestamp"]) for e in record["events"]],
                        status=Status(StatusCode(code), description if StatusCode(code) is StatusCode.ERROR else None), start_time=record["start_time"],
                        end_time=record["end_time"], instrumentation_scope=InstrumentationScope(*record["scope"]))
