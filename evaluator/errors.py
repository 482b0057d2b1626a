"""Errors a user can act on. The CLI prints them without a traceback."""
from __future__ import annotations

from dataclasses import dataclass


class CtxevalError(Exception):
    """Base class of every error ctxeval reports to the user as a plain message."""


@dataclass(frozen=True)
class Violation:
    """One problem in one file, at one JSON path ("$" is the document root)."""

    file: str
    json_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.json_path}: {self.message}"


class ValidationFailed(CtxevalError):
    def __init__(self, violations: list[Violation]):
        self.violations = violations
        super().__init__("\n".join(str(v) for v in violations))


class EpisodeEnded(CtxevalError):
    """The agent's part of an episode is over before the agent stopped by itself: it submitted, the
    model stopped, the sandbox was lost, ... `reason` is the stop reason recorded (episode.result.StopReason)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class BudgetExceeded(EpisodeEnded):
    """The episode hit a limit the run set: steps, tokens, cost or wall time."""


class CallCancelled(CtxevalError):
    """A call cut short by its deadline (an episode's wall-time budget): it ran out of time rather
    than failed. `attempts` requests had been sent, over `seconds`."""

    def __init__(self, message: str, attempts: int = 0, seconds: float = 0.0):
        super().__init__(message)
        self.attempts = attempts
        self.seconds = seconds


class SandboxError(CtxevalError):
    """The sandbox itself failed (not the agent's command)."""
