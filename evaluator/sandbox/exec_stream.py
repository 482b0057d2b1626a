"""Reading one exec's multiplexed stream: output into the collector, the helper's report out of it.

The exec helper's last stderr line is `\\x1ectxeval-exec NONCE {json}`. Only a line carrying this
exec's nonce is taken as the report; anything else (a command printing the same mark) is the
command's own output and kept as such. The mark may arrive split across frames, so the filter
holds back a partial mark until it is complete or cannot be one.
"""
from __future__ import annotations

import json
import socket
import time
from typing import Any, Callable

from .frames import split_frames
from .outcomes import OutputCollector

MARK = b"\x1ectxeval-exec "
MAX_REPORT_BYTES = 4096
HOST_CAP_SLACK = 1024 * 1024  # bytes past the cap after which the host stops trusting the helper's cap


class ReportFilter:
    """Splits the helper's report off the stderr stream."""

    def __init__(self, nonce: str):
        self.prefix = MARK + nonce.encode() + b" "
        self.held = b""
        self.report_bytes: bytes | None = None

    def feed(self, data: bytes) -> bytes:
        """Bytes of the command's stderr that are certainly not the report."""
        if self.report_bytes is not None:
            self.report_bytes = (self.report_bytes + data)[:MAX_REPORT_BYTES]
            return b""
        data = self.held + data
        self.held = b""
        at = data.find(self.prefix)
        if at >= 0:
            self.report_bytes = data[at + len(self.prefix):][:MAX_REPORT_BYTES]
            return data[:at]
        for keep in range(min(len(self.prefix) - 1, len(data)), 0, -1):  # a partial prefix at the end
            if self.prefix.startswith(data[-keep:]):
                self.held = data[-keep:]
                return data[:-keep]
        return data

    def finish(self) -> tuple[bytes, dict[str, Any] | None]:
        """(stderr still held back, the parsed report or None)."""
        if self.report_bytes is None:
            return self.held, None
        line = self.report_bytes.split(b"\n", 1)[0]
        try:
            report = json.loads(line)
        except ValueError:
            return b"", None
        if not isinstance(report, dict) or not isinstance(report.get("rc"), int):
            return b"", None
        return b"", report


class ExecPump:
    """Reads one exec to EOF under a host deadline: at the deadline `escalate` is called once (it
    kills the agent's processes), and after `grace` more seconds the pump gives up."""

    def __init__(self, raw: socket.socket, collector: OutputCollector, nonce: str):
        self.raw, self.collector = raw, collector
        self.filter = ReportFilter(nonce)
        self.report: dict[str, Any] | None = None
        self.escalated = self.abandoned = False

    def run(self, deadline: float, escalate: Callable[[], None], grace: float) -> None:
        buffer = b""
        self.raw.settimeout(0.25)
        while True:
            if time.monotonic() > deadline or self._over_cap():
                if self.escalated:
                    self.abandoned = True
                    break
                self.escalated = True
                escalate()
                deadline = time.monotonic() + grace
                continue
            try:
                chunk = self.raw.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            buffer = self._frames(buffer + chunk)
        held, self.report = self.filter.finish()
        if held:
            self.collector.feed(2, held)

    def _over_cap(self) -> bool:
        return self.collector.total > self.collector.cap + HOST_CAP_SLACK and not self.escalated

    def _frames(self, buffer: bytes) -> bytes:
        frames, rest = split_frames(buffer)
        for stream, payload in frames:
            if stream == 2:
                payload = self.filter.feed(payload)
            if stream in (1, 2) and payload:
                self.collector.feed(stream, payload)
        return rest


def feed_stdin(raw: socket.socket, data: bytes) -> None:
    """Send an exec's stdin, then close our half of the socket (the command sees EOF)."""
    try:
        if data:
            raw.sendall(data)
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        pass
