"""What one exec comes to: its outcome (one word, most specific first), its output within a cap.

Every provider classifies its execs with `classify` and collects output with `OutputCollector`, so
outcomes mean the same on every backend and in every event and result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ExecOutcome(StrEnum):
    """Outcomes of one exec; a member is its plain string in events and results (json, f-strings, ==)."""

    OK = "ok"  # exited 0
    NONZERO_EXIT = "nonzero_exit"  # exited non-zero, for none of the reasons below
    TIMEOUT = "timeout"  # ran past the exec's own timeout and was killed
    OUTPUT_CAPPED = "output_capped"  # produced more output than the cap; what is past it is dropped
    MEMORY_KILLED = "memory_killed"  # killed for going over the sandbox's memory limit
    PIDS_LIMIT = "pids_limit"  # hit the sandbox's process limit
    KILLED = "killed"  # killed by SIGKILL (exit 137 / -9) from outside the limits above
    WALL_TIME = "wall_time_exceeded"  # the sandbox's wall-time deadline passed: cut, or never run
    SANDBOX_DIED = "sandbox_died"  # the sandbox itself is gone (before or during the exec)
    DISK_FULL = "disk_full"  # failed with "No space left on device"


DISK_FULL_MESSAGE = b"No space left on device"


@dataclass
class ExecResult:
    exit_code: int | None
    stdout: str
    stderr: str
    outcome: ExecOutcome
    duration_s: float
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    raw_stdout: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.outcome == ExecOutcome.OK

    def to_record(self, max_chars: int = 4000) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "outcome": str(self.outcome),  # a plain str in records
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

    def result(self, exit_code: int | None, outcome: ExecOutcome, duration_s: float) -> "ExecResult":
        return ExecResult(exit_code=exit_code, stdout=self.text(1), stderr=self.text(2),
                          outcome=outcome, duration_s=duration_s, stdout_bytes=self.seen[1],
                          stderr_bytes=self.seen[2], raw_stdout=self.raw(1))

    def text(self, stream: int) -> str:
        body = self.kept[stream].decode("utf-8", errors="replace")
        if self.exceeded and self.seen[stream] > len(self.kept[stream]):
            body += f"\n[ctxeval: output capped at {self.cap} bytes; {self.seen[stream]} bytes produced]"
        return body


def classify(exit_code: int | None, *, timed_out: bool, capped: bool,
             memory_killed: bool = False, pids_limited: bool = False, stderr: bytes | None = None) -> ExecOutcome:
    """One outcome per exec, most specific first."""
    if memory_killed:
        return ExecOutcome.MEMORY_KILLED
    if pids_limited:
        return ExecOutcome.PIDS_LIMIT
    if capped:
        return ExecOutcome.OUTPUT_CAPPED
    if timed_out:
        return ExecOutcome.TIMEOUT
    if exit_code == 0:
        return ExecOutcome.OK
    if exit_code is not None and exit_code in (137, -9):
        return ExecOutcome.KILLED
    if stderr is not None and DISK_FULL_MESSAGE in stderr:
        return ExecOutcome.DISK_FULL
    return ExecOutcome.NONZERO_EXIT
