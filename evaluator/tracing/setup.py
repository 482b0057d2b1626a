"""One tracer provider per run: JSONL always, Phoenix (OTLP/HTTP, batched) when configured.

A dead or hanging collector must never block or fail a run: Phoenix spans are exported from a
background batch thread with a short per-request timeout, and the final flush runs in a daemon
thread the run waits on for at most SHUTDOWN_GRACE_SECONDS.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from .. import __version__
from .jsonl import TRACES_FILE, JsonlSpanExporter
from .settings import PhoenixSettings
from .spans import Tracing
from .transfer import span_from_record

SHUTDOWN_GRACE_SECONDS = 10.0  # the longest a run waits for its last spans to reach a collector
SERVICE_NAME = "ctxeval"
# An llm span carries every message the policy sent (2-6 attributes each): OpenTelemetry's default
# of 128 attributes would silently drop the oldest messages of a long context (and log each drop).
MAX_SPAN_ATTRIBUTES = 20_000
EXPORTER_LOGGERS = ("opentelemetry.exporter.otlp.proto.http", "opentelemetry.sdk.trace.export",
                    "opentelemetry.sdk._shared_internal")


@dataclass
class RunTracing:
    provider: TracerProvider
    tracing: Tracing
    jsonl_path: Path
    phoenix: PhoenixSettings | None = None
    warnings: list[str] = field(default_factory=list)
    processors: list[SpanProcessor] = field(default_factory=list)

    def accept(self, records: list[dict[str, Any]]) -> None:
        """Export spans that ended elsewhere (an episode on a Ray node; transfer.py's records) as
        this run's own."""
        for record in records:
            span = span_from_record(record, self.provider.resource)
            for processor in self.processors:
                processor.on_end(span)

    def shutdown(self, grace_seconds: float = SHUTDOWN_GRACE_SECONDS) -> bool:
        """Flush and close; True when everything finished within the grace period."""
        done = threading.Event()

        def close() -> None:
            try:
                self.provider.shutdown()
            except Exception as exc:  # an exporter failing must not fail the run
                self.warnings.append(f"tracing shutdown: {type(exc).__name__}: {exc}")
            finally:
                done.set()

        threading.Thread(target=close, name="ctxeval-tracing-shutdown", daemon=True).start()
        finished = done.wait(grace_seconds)
        if not finished:
            self.warnings.append(f"spans still unexported after {grace_seconds:.0f} s were dropped "
                                 f"(is the collector at {self.phoenix.endpoint if self.phoenix else '?'} up?)")
        return finished


def _phoenix_processor(settings: PhoenixSettings) -> BatchSpanProcessor:
    from phoenix.otel import HTTPSpanExporter  # OTLP/HTTP; reads Phoenix's client-header settings
    exporter = HTTPSpanExporter(endpoint=settings.endpoint, headers=settings.headers or None,
                                timeout=settings.export_timeout_seconds)
    return BatchSpanProcessor(exporter, schedule_delay_millis=1000,
                              export_timeout_millis=int(settings.export_timeout_seconds * 1000))


def _quiet_exporter_logs() -> None:
    """A dead collector is reported once by ctxeval, not by a traceback per batch."""
    for name in EXPORTER_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def start_run_tracing(run_dir: Path, phoenix: PhoenixSettings | None = None,
                      attributes: dict[str, Any] | None = None,
                      warn: Callable[[str], None] | None = None) -> RunTracing:
    from phoenix.otel import PROJECT_NAME  # the resource attribute Phoenix files spans under
    project = phoenix.project_name if phoenix else SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME,
                                                        "service.version": __version__,
                                                        PROJECT_NAME: project}),
                              span_limits=SpanLimits(max_span_attributes=MAX_SPAN_ATTRIBUTES),
                              shutdown_on_exit=False)  # no exit handler that could wait on a dead collector
    jsonl_path = run_dir / TRACES_FILE
    processors: list[SpanProcessor] = [SimpleSpanProcessor(JsonlSpanExporter(jsonl_path))]
    if phoenix is not None:
        _quiet_exporter_logs()
        try:
            processors.append(_phoenix_processor(phoenix))
        except Exception as exc:  # a bad endpoint: trace locally, say so, go on
            if warn:
                warn(f"Phoenix export disabled: {type(exc).__name__}: {exc}")
            phoenix = None
    for processor in processors:
        provider.add_span_processor(processor)
    tracer = provider.get_tracer("ctxeval", __version__)
    return RunTracing(provider, Tracing(tracer, attributes), jsonl_path, phoenix, processors=processors)
