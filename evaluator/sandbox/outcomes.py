"""What one exec comes to: its outcome (one word, most specific first), its output within a cap.

Every provider classifies its execs with `classify` and collects output with `OutputCollector`, so
outcomes mean the same on every backend and in every event and result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Outcomes of one exec, recorded as they are in events and results.
OUTCOME_OK = "ok"
OUTCOME_NONZERO_EXIT = "nonzero_exit"
OUTCOME_TIMEOUT = "timeout"
OUTCOME_OUTPUT_CAPPED = "output_capped"
OUTCOME_MEMORY_KILLED = "memory_killed"
OUTCOME_PIDS_LIMIT = "pids_limit"
OUTCOME_KILLED = "killed"
OUTCOME_WALL_TIME = "wall_time_exceeded"
OUTCOME_SANDBOX_DIED = "sandbox_died"
OUTCOME_DISK_FULL = "disk_full"
DISK_FULL_MESSAGE = b"No space left on device"


@dataclass
class ExecResult:
    exit_code: int | None
    stdout: str
    stderr: str
    outcome: str
    duration_s: float
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    raw_stdout: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.outcome == OUTCOME_OK

    def to_record(self, max_chars: int = 4000) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "outcome": self.outcome,
                "duration_s": round(self.duration_s, 4), "stdout": self.stdout[:max_chars],
                "stderr": self.stderr[:max_chars], "stdout_bytes": self.stdout_bytes,
                "stderr_bytes": self.stderr_bytes}


class OutputCollector:
    """Keeps at most `cap` bytes of stdout+stderr together and says when the cap is exceeded."""

    def __init__(self, cap: int):
        self.cap = cap
        self.kept = {1: bytearray(), 2: bytearray()}
        self.seen = {1: 0, 2: 0}

    @property
    def total(self) -> int:
        return self.seen[1] + self.seen[2]

    @property
    def exceeded(self) -> bool:
        return self.total > self.cap

    def feed(self, stream: int, data: bytes) -> bool:
        room = self.cap - len(self.kept[1]) - len(self.kept[2])
        if room > 0:
            self.kept[stream] += data[:room]
        self.seen[stream] += len(data)
        return self.exceeded

    def raw(self, stream: int) -> bytes:
        return bytes(self.kept[stream])

    def result(self, exit_code: int | None, outcome: str, duration_s: float) -> "ExecResult":
        return ExecResult(exit_code=exit_code, stdout=self.text(1), stderr=self.text(2),
                          outcome=outcome, duration_s=duration_s, stdout_bytes=self.seen[1],
                          stderr_bytes=self.seen[2], raw_stdout=self.raw(1))

    def text(self, stream: int) -> str:
        body = self.kept[stream].decode("utf-8", errors="replace")
        if self.exceeded and self.seen[stream] > len(self.kept[stream]):
            body += f"\n[ctxeval: output capped at {self.cap} bytes; {self.seen[stream]} bytes produced]"
        return body


def classify(exit_code: int | None, *, timed_out: bool, capped: bool,
             memory_killed: bool = False, pids_limited: bool = False, stderr: bytes | None = None) -> str:
    """One outcome per exec, most specific first."""
    if memory_killed:
        return OUTCOME_MEMORY_KILLED
    if pids_limited:
        return OUTCOME_PIDS_LIMIT
    if capped:
        return OUTCOME_OUTPUT_CAPPED
    if timed_out:
        return OUTCOME_TIMEOUT
    if exit_code == 0:
        return OUTCOME_OK
    if exit_code is not None and exit_code in (137, -9):
        return OUTCOME_KILLED
    if stderr is not None and DISK_FULL_MESSAGE in stderr:
        return OUTCOME_DISK_FULL
    return OUTCOME_NONZERO_EXIT
