"""OpenTelemetry tracing of runs: run → episode → step → llm/tool spans with OpenInference attributes.

Spans always go to `traces.jsonl` under the run; to Arize Phoenix as well when configured
(see settings.py). With no tracing set up, every helper is a no-op.
"""
from .setup import RunTracing, start_run_tracing
from .settings import PhoenixSettings, phoenix_settings
from .spans import NO_TRACING, Tracing

__all__ = ["NO_TRACING", "PhoenixSettings", "RunTracing", "Tracing", "phoenix_settings", "start_run_tracing"]
