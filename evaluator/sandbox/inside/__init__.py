"""Programs that run *inside* a sandbox container, with the image's own python3 and its standard
library only (they import nothing of ctxeval). They are sent as `python3 -I -S -c SOURCE`, so no
file of theirs is mounted and nothing in the agent's workspace can shadow a module they import.

- supervisor.py: PID 1. Root inside the container with only CAP_KILL/SETUID/SETGID, not dumpable,
  so the agent's uid can neither signal nor ptrace it. Reaps orphans, answers the host over its
  attached stdin (kill every agent process without forking, ping, move the deadline) and ends
  the container when the host goes away or the sandbox's deadline passes.
- exec_helper.py: one per command. Root as well; runs the command as the agent's uid in its own
  session, relays its output through pipes it alone holds, enforces the timeout and output cap,
  kills what the command left in its group, and reports counters on a last stderr line carrying
  a nonce the agent cannot read.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=None)
def source(name: str) -> str:
    """The source text of one in-container program (e.g. "supervisor")."""
    return (Path(__file__).with_name(f"{name}.py")).read_text(encoding="utf-8")
