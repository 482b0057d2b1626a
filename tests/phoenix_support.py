"""Test helpers for a real Arize Phoenix server (not a test file).

The server runs from the Phoenix venv that `python3 scripts/phoenix_server.py install` makes
(<project>/.phoenix-venv); that script also says how the server is started (env vars, ports).

Spans are read through Phoenix's REST API, `GET /v1/projects/{project}/spans` (JSON
`{"data": [...], "next_cursor": str | None}`, newest first, `limit` <= 1000, paged with `cursor`).
`fetch_spans` returns each span as a flat dict:

    {"name": str,
     "span_kind": str,          # OpenInference kind ("LLM", "TOOL", "CHAIN", ...; "UNKNOWN" if unset)
     "span_id": str,            # 16 hex digits, as OpenTelemetry prints it
     "trace_id": str,           # 32 hex digits
     "parent_id": str | None,   # the parent's span_id; None for a root span
     "status_code": str,        # "OK" | "ERROR" | "UNSET"
     "status_message": str,
     "start_time": str, "end_time": str,   # ISO 8601, UTC
     "attributes": dict,        # flat dotted keys as emitted, e.g. {"llm.model_name": "m",
                                #  "llm.token_count.prompt": 12}; lists of primitives stay lists,
                                #  lists of objects become "key.0.sub" keys. Phoenix moves
                                #  "openinference.span.kind" out into span_kind.
     "events": list[dict],      # {"name", "timestamp", "attributes"}
     "phoenix_id": str}         # Phoenix's own global id (the pagination cursor kind)
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "phoenix_server.py"
_spec = importlib.util.spec_from_file_location("phoenix_server_script", _SCRIPT)
phoenix_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(phoenix_script)

PHOENIX_VENV: Path = phoenix_script.DEFAULT_VENV
PHOENIX_VERSION: str = phoenix_script.PHOENIX_VERSION
INSTALL_HINT: str = phoenix_script.INSTALL_HINT


def phoenix_installed(venv: Path = PHOENIX_VENV) -> bool:
    return phoenix_script.is_installed(venv)


@dataclass(frozen=True)
class PhoenixServer:
    url: str                     # http://127.0.0.1:PORT (UI, REST API under /v1)
    process: subprocess.Popen
    log_path: Path               # the server's stdout and stderr

    @property
    def traces_endpoint(self) -> str:
        """The OTLP/HTTP (protobuf) endpoint to export spans to."""
        return f"{self.url}/v1/traces"

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines)


def log_tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def phoenix_server(tmp_path: Path, startup_timeout: float = 180,
                   venv: Path = PHOENIX_VENV) -> Iterator[PhoenixServer]:
    """Start Phoenix on free 127.0.0.1 ports with its SQLite data under tmp_path; stop it after."""
    if not phoenix_installed(venv):
        raise RuntimeError(f"arize-phoenix=={PHOENIX_VERSION} is not installed in {venv}; run: {INSTALL_HINT}")
    workdir = tmp_path / "phoenix"
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):  # a free port can be taken between picking and binding: then retry
        log_path = tmp_path / f"phoenix-{attempt}.log"
        port, grpc_port = phoenix_script.free_port("127.0.0.1"), phoenix_script.free_port()
        argv, env = phoenix_script.server_command(venv, "127.0.0.1", port, grpc_port, workdir)
        url = phoenix_script.server_url("127.0.0.1", port)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=workdir)
        try:
            phoenix_script.wait_until_answers(url, process, startup_timeout)
            break
        except RuntimeError as error:
            _stop(process)
            if process.returncode is not None and "address already in use" in log_tail(log_path).lower() \
                    and attempt < 2:
                continue
            raise RuntimeError(f"{error}\n--- phoenix log {log_path} (last lines) ---\n{log_tail(log_path)}") \
                from None
    try:
        yield PhoenixServer(url, process, log_path)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _get_json(url: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def fetch_spans(url: str, project_name: str, *, page_size: int = 1000, timeout: float = 10,
                **filters: str | list[str]) -> list[dict]:
    """Every span of a project, oldest first, as the flat dicts described in the module docstring.

    `filters` are the endpoint's query parameters: trace_id, span_id, parent_id ("null" for roots),
    name, span_kind, status_code, start_time, end_time (ISO 8601); a list repeats the parameter.
    A project Phoenix has not seen yet (no span arrived) has no spans: [].
    """
    base = f"{url}/v1/projects/{urllib.parse.quote(project_name, safe='')}/spans"
    params: dict[str, Any] = {"limit": page_size, **filters}
    spans: list[dict] = []
    while True:
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            body = _get_json(f"{base}?{query}", timeout)
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            if error.code == 404 and "not found" in detail and "Project" in detail:
                return []
            raise RuntimeError(f"GET {base} -> HTTP {error.code}: {detail[:500]}") from None
        spans.extend(_normalise(raw) for raw in body.get("data", []))
        if not body.get("next_cursor"):
            break
        params["cursor"] = body["next_cursor"]
    spans.reverse()  # the API pages newest first
    return spans


def wait_for_spans(url: str, project_name: str, predicate: Callable[[list[dict]], bool] | None = None,
                   timeout: float = 30, interval: float = 0.25, **filters: str | list[str]) -> list[dict]:
    """Poll fetch_spans until predicate(spans) holds (default: at least one span); return the spans.

    Phoenix inserts received spans in batches, so they show up a moment after the export returns.
    Raises TimeoutError naming what was seen when `timeout` passes first.
    """
    predicate = predicate or bool
    deadline = time.monotonic() + timeout
    while True:
        spans = fetch_spans(url, project_name, **filters)
        if predicate(spans):
            return spans
        if time.monotonic() >= deadline:
            seen = [(s["name"], s["span_kind"]) for s in spans]
            raise TimeoutError(f"spans of project {project_name!r} did not match within {timeout:.0f}s; "
                               f"saw {len(spans)}: {seen[:20]}")
        time.sleep(interval)


def _normalise(raw: dict) -> dict:
    context = raw.get("context") or {}
    return {
        "name": raw.get("name", ""),
        "span_kind": raw.get("span_kind") or "UNKNOWN",
        "span_id": context.get("span_id") or raw.get("span_id", ""),
        "trace_id": context.get("trace_id") or raw.get("trace_id", ""),
        "parent_id": raw.get("parent_id") or None,
        "status_code": raw.get("status_code", "UNSET"),
        "status_message": raw.get("status_message", ""),
        "start_time": raw.get("start_time"),
        "end_time": raw.get("end_time"),
        "attributes": dict(_flatten(raw.get("attributes") or {})),
        "events": raw.get("events") or [],
        "phoenix_id": raw.get("id", ""),
    }


def _flatten(value: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested attribute objects as flat dotted keys (this API already flattens; kept for safety)."""
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            yield from _flatten(item, f"{name}.")
        else:
            yield name, item
