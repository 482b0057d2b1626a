"""Stopping a run on SIGTERM, SIGINT or SIGHUP without leaving a sandbox behind.

The first signal asks the run to stop: queued episodes never start, the sandboxes of the
episodes in flight are removed (their next action ends them), and those episodes are set aside
as torn attempts; the run then records itself as interrupted and exits with 128 + the signal's
number (130 for SIGINT, 143 for SIGTERM), saying how to resume. A second signal exits at once:
every sandbox still ends within a second or two, because each one ends itself when the process
that attached to it is gone.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Callable, Iterator

from .errors import CtxevalError

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class EpisodeInterrupted(Exception):
    """An episode was cut short by a signal: it writes no result and is run again on resume."""


class RunInterrupted(CtxevalError):
    def __init__(self, signum: int, run_id: str, finished: int, total: int):
        self.signum, self.run_id = signum, run_id
        name = signal.Signals(signum).name
        super().__init__(f"run {run_id} interrupted by {name}: {finished} of {total} episodes finished and kept; "
                         f"finish it with `ctxeval run --resume {run_id}`")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Interrupt:
    """Set once a stop signal arrived (thread-safe; workers poll it)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None

    def is_set(self) -> bool:
        return self.event.is_set()

    def set(self, signum: int) -> None:
        self.signum = signum
        self.event.set()


@contextlib.contextmanager
def stop_signals(on_first: Callable[[int], None] | None = None) -> Iterator[Interrupt]:
    """Route stop signals to an Interrupt for the duration of a run (main thread only; elsewhere
    the Interrupt is simply never set)."""
    interrupt = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return

    def handler(signum: int, _frame: object) -> None:
        if interrupt.is_set():
            os._exit(128 + signum)  # the second signal: at once (the sandboxes end themselves)
        interrupt.set(signum)
        if on_first is not None:
            on_first(signum)

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield interrupt
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
