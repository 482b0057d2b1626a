"""How the docker backend runs one command, two ways, with the same limits and outcomes.

- Over the channel (the default): one JSON request to PID 1 on the stream the host already holds
  (supervisor_channel.py); PID 1 forks the command itself, keeps its limits with the exec core
  in its own event loop, and relays its output and report. No engine call, no new process in the engine.
- Plain: one `docker exec` of exec_helper.py per command, its report on a nonce-marked last
  stderr line (exec_stream.py). The fallback for a sandbox whose channel answered wrongly.

Both are bounded by the host: at the exec's deadline plus EXEC_GRACE_SECONDS it asks PID 1 to
kill every agent process (`escalate`), and gives up EXEC_GRACE_SECONDS later whatever happens.
`exec_result` turns what either path saw into the one ExecResult every provider returns.
"""
from __future__ import annotations

import base64
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .defaults import AGENT_UID
from .docker_config import PYTHON, SUPERVISOR_USER, WORKSPACE_MOUNT
from .exec_stream import HOST_CAP_SLACK, ExecPump, feed_stdin
from .inside import EXEC_HELPER_BOOTSTRAP, EXEC_HELPER_ENV, source
from .outcomes import ExecOutcome, ExecResult, OutputCollector, classify
from .supervisor_channel import SupervisorChannel

EXEC_GRACE_SECONDS = 5.0  # past an exec's timeout: then kill every agent process; as long again: give up
REPORT_FLAGS = ("timed_out", "capped")
REPORT_COUNTERS = ("pids_before", "pids_after", "oom_before", "oom_after", "stdout_bytes", "stderr_bytes")


@dataclass
class ExecEnd:
    """What one exec's transport saw, before it is judged."""

    report: dict[str, Any] | None = None
    escalated: bool = False  # the host killed every agent process at the deadline
    abandoned: bool = False  # ... and still no end came: the host gave up
    fault: str | None = None  # the channel answered wrongly: the sandbox falls back to plain exec
    not_started: str | None = None  # nothing could be started (the engine's or the fork's error)
    exit_code: int | None = None  # a plain helper's exit code when it ended with no report
    events: list[dict[str, Any]] = field(default_factory=list)


def report_problem(report: Any) -> str | None:
    """Why a helper's report cannot be trusted, or None when it has the shape the core writes."""
    if not isinstance(report, dict) or type(report.get("rc")) is not int:
        return "a report without an integer rc"
    if any(not isinstance(report.get(flag, False), bool) for flag in REPORT_FLAGS):
        return "a report with a non-boolean flag"
    if any(type(report.get(name, 0)) is not int for name in REPORT_COUNTERS):
        return "a report with a non-integer counter"
    return None


def on_channel(channel: SupervisorChannel, command: str, args: list[str], stdin: bytes, env: dict[str, str],
               timeout: float, collector: OutputCollector, escalate: Callable[[], None],
               program: str | None = None) -> ExecEnd:
    """Run one command (or a `program` PID 1 preloaded) through PID 1: one request, its output
    streamed back, one reply."""
    lock = threading.Lock()

    def sink(stream: int, data: bytes) -> None:
        with lock:
            collector.feed(stream, data)

    def over_cap() -> bool:
        return collector.total > collector.cap + HOST_CAP_SLACK

    what = {"program": program} if program is not None else {"command": command}
    request_id = channel.submit("exec", sink=sink, **what, args=args, env=env, timeout=timeout,
                                cap=collector.cap, uid=AGENT_UID, cwd=WORKSPACE_MOUNT,
                                stdin=base64.b64encode(stdin).decode())
    if request_id is None:
        return ExecEnd(not_started="the sandbox's channel is closed")
    end = ExecEnd()
    try:
        reply = channel.wait(request_id, timeout + EXEC_GRACE_SECONDS, until=over_cap)
        if reply is None and not channel.closed:
            end.escalated = True
            escalate()
            reply = channel.wait(request_id, EXEC_GRACE_SECONDS)
            end.abandoned = reply is None
    finally:
        channel.forget(request_id)
    if channel.faults:
        end.fault = channel.faults.pop()
    if reply is None:
        return end
    return _judge_reply(reply, end)


def _judge_reply(reply: dict[str, Any], end: ExecEnd) -> ExecEnd:
    if reply.get("done") is not True:
        end.fault = end.fault or "a reply that is not an exec's end"
    elif reply.get("fork_error"):
        end.not_started = str(reply["fork_error"])
    elif reply.get("report") is not None:
        problem = report_problem(reply["report"])
        if problem:
            end.fault = end.fault or problem
        else:
            end.report = reply["report"]
    else:
        end.events.append({"event": "exec_helper_no_report", "error": str(reply.get("error"))[:300]})
    return end


def plain(api: Any, container_id: str, command: str, args: list[str], stdin: bytes, env: dict[str, str],
          timeout: float, collector: OutputCollector, escalate: Callable[[], None]) -> ExecEnd:
    """Run one command with a `docker exec` of the exec helper."""
    nonce = secrets.token_hex(16)
    environment = {**env, "CTXEVAL_EXEC_NONCE": nonce, "CTXEVAL_EXEC_TIMEOUT": f"{timeout:g}",
                   "CTXEVAL_EXEC_OUTPUT_CAP": str(collector.cap), "CTXEVAL_EXEC_UID": str(AGENT_UID),
                   "CTXEVAL_EXEC_CWD": WORKSPACE_MOUNT, EXEC_HELPER_ENV: source("exec_helper")}
    try:
        created = api.exec_create(container_id, [*PYTHON, EXEC_HELPER_BOOTSTRAP, command, *args],
                                  stdin=True, stdout=True, stderr=True, user=SUPERVISOR_USER,
                                  environment=environment, workdir="/")
        sock = api.exec_start(created["Id"], socket=True)
    except Exception as exc:
        return ExecEnd(not_started=str(exc))
    raw: socket.socket = getattr(sock, "_sock", sock)
    threading.Thread(target=feed_stdin, args=(raw, stdin), daemon=True).start()
    pump = ExecPump(raw, collector, nonce)
    pump.run(time.monotonic() + timeout + EXEC_GRACE_SECONDS, escalate, EXEC_GRACE_SECONDS)
    raw.close()
    end = ExecEnd(report=pump.report, escalated=pump.escalated, abandoned=pump.abandoned)
    if end.report is None and not end.escalated:
        end.exit_code = _exit_code(api, created["Id"])
        end.events.append({"event": "exec_helper_no_report", "exit_code": end.exit_code})
    return end


def _exit_code(api: Any, exec_id: str) -> int | None:
    for _ in range(40):
        try:
            info = api.exec_inspect(exec_id)
        except Exception:
            return None
        if not info.get("Running"):
            return info.get("ExitCode")
        time.sleep(0.05)
    return None


def exec_result(end: ExecEnd, collector: OutputCollector, duration: float, *, wall_expired: bool,
                state: Callable[[], str]) -> ExecResult:
    """The outcome of one exec from what its transport saw (`state`: the engine's view of the
    container, asked only when the command ended without a report)."""
    report = end.report
    if wall_expired:
        return collector.result(report["rc"] if report else None, ExecOutcome.WALL_TIME, duration)
    if end.not_started is not None:
        return _not_started(end.not_started, collector, duration, state())
    if end.fault is not None:
        result = collector.result(None, ExecOutcome.NONZERO_EXIT, duration)
        result.stderr += f"\n[ctxeval: the sandbox's channel answered wrongly ({end.fault}); it uses plain exec from now on]"
        return result
    if report is None:
        if state() in ("gone", "exited", "dead", "removing"):
            return collector.result(None, ExecOutcome.SANDBOX_DIED, duration)
        if end.escalated:
            return collector.result(None, ExecOutcome.TIMEOUT, duration)
        result = collector.result(end.exit_code, ExecOutcome.NONZERO_EXIT, duration)
        result.stderr += f"\n[ctxeval: the command's helper ended with no report (exit {end.exit_code})]"
        return result
    outcome = classify(report["rc"], timed_out=bool(report.get("timed_out")) or end.escalated,
                       capped=bool(report.get("capped")) or collector.exceeded,
                       memory_killed=report.get("oom_after", 0) > report.get("oom_before", 0),
                       pids_limited=report.get("pids_after", 0) > report.get("pids_before", 0),
                       stderr=collector.raw(2))
    result = collector.result(report["rc"], outcome, duration)
    result.stdout_bytes = max(result.stdout_bytes, int(report.get("stdout_bytes") or 0))
    result.stderr_bytes = max(result.stderr_bytes, int(report.get("stderr_bytes") or 0))
    return result


def _not_started(error: str, collector: OutputCollector, duration: float, state: str) -> ExecResult:
    """Nothing could be started: the container is gone, or it is full of processes."""
    if state not in ("running", "paused"):
        outcome = ExecOutcome.SANDBOX_DIED
    elif "resource temporarily unavailable" in error.lower():
        outcome = ExecOutcome.PIDS_LIMIT
    else:
        outcome = ExecOutcome.NONZERO_EXIT
    result = collector.result(None, outcome, duration)
    result.stderr = f"[ctxeval: the command could not be started: {error[:500]}]"
    return result
