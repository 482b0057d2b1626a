"""A span exporter writing one JSON object per finished span, flushed at once (crash-safe)."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

TRACES_FILE = "traces.jsonl"


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def span_record(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    attributes = dict(span.attributes or {})
    return {
        "name": span.name,
        "trace_id": _hex(context.trace_id, 32),
        "span_id": _hex(context.span_id, 16),
        "parent_id": _hex(span.parent.span_id, 16) if span.parent else None,
        "kind": attributes.get("openinference.span.kind"),
        "start_time_ns": span.start_time,
        "end_time_ns": span.end_time,
        "duration_ms": round((span.end_time - span.start_time) / 1e6, 3) if span.end_time and span.start_time else None,
        "status": span.status.status_code.name,
        "status_message": span.status.description,
        "attributes": attributes,
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
    }


class JsonlSpanExporter(SpanExporter):
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._handle = open(path, "a", encoding="utf-8")
        self.error: OSError | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(s), default=str) + "\n" for s in spans)
        with self._lock:
            if self._handle is None:
                return SpanExportResult.FAILURE
            try:
                self._handle.write(lines)
                self._handle.flush()
            except OSError as exc:  # e.g. a full disk: the run reports it; tracing must not crash it
                self.error = exc
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._handle is not None:
                try:
                    self._handle.close()
                except OSError as exc:
                    self.error = exc
                self._handle = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def read_spans(path: Path) -> list[dict[str, Any]]:
    """The spans of a traces.jsonl (a torn last line from a crash is skipped)."""
    spans = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            spans.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return spans
