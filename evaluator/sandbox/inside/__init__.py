"""Programs that run *inside* a sandbox container, with the image's own python3 and its standard
library only (they import nothing of ctxeval). They are started as `python3 -I -S -c BOOTSTRAP`
(isolated: no cwd, environment or site directory on the path, so nothing in the agent's workspace
can shadow a module they import), and their source follows by a channel the agent cannot read:
the supervisor's on its own stdin (length-prefixed, before the protocol starts), the exec helper's
in the exec's environment (taken out before the command starts). No file of theirs is mounted,
and their command lines stay short.

- exec_core.py: how a command is run (as the agent's uid, in its own session, output relayed
  through pipes only a root process holds, timeout, output cap, group kill, cgroup counters). It
  is placed before the text of each of the two programs below.
- workspace_ops.py: reset and wipe of the sandbox's folders, in a helper PID 1 forks.
- jobs.py: what PID 1 forks: each command (one fork: no helper between PID 1 and the command),
  a preloaded Python program, and the reset and wipe helpers.
- supervisor.py: PID 1, and the sandbox's persistent exec channel. Root inside the container with
  only CAP_KILL/SETUID/SETGID/SETPCAP, not dumpable, so the agent's uid can neither signal nor
  ptrace it. Reaps orphans, answers the host over its attached stdin (run a command it forks and
  keeps the limits of, reset the workspace and return its digest, kill every agent process without
  forking, ping, move the deadline) and ends the container when the host goes away or the
  sandbox's deadline passes.
- exec_helper.py: one command per `docker exec`, the fallback when a sandbox's channel is not
  usable; reports counters on a last stderr line carrying a nonce the agent cannot read.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path


# Each program's source: the texts of these files, in order (one module's worth of globals).
PROGRAM_PARTS = {"supervisor": ("exec_core", "workspace_ops", "jobs", "supervisor"),
                 "exec_helper": ("exec_core", "exec_helper")}


@lru_cache(maxsize=None)
def source(name: str) -> str:
    """The source text of one in-container program ("supervisor" or "exec_helper")."""
    return "\n\n".join((Path(__file__).with_name(f"{part}.py")).read_text(encoding="utf-8")
                        for part in PROGRAM_PARTS[name])


# PID 1 reads a 10-digit length and that many bytes of source from its stdin, then runs it.
SUPERVISOR_BOOTSTRAP = (
    "import os\n"
    "def take(n):\n"
    "    data = b''\n"
    "    while len(data) < n:\n"
    "        chunk = os.read(0, n - len(data))\n"
    "        if not chunk:\n"
    "            raise SystemExit(0)\n"
    "        data += chunk\n"
    "    return data\n"
    "exec(compile(take(int(take(10))), 'ctxeval-supervisor', 'exec'), {'__name__': '__main__'})\n")
EXEC_HELPER_ENV = "CTXEVAL_EXEC_HELPER"
EXEC_HELPER_BOOTSTRAP = ("import os; exec(compile(os.environ.pop('CTXEVAL_EXEC_HELPER'), 'ctxeval-exec', 'exec'), "
                         "{'__name__': '__main__'})")


def supervisor_preamble() -> bytes:
    """What the host writes to PID 1's stdin first: the supervisor's length and source."""
    code = source("supervisor").encode()
    return f"{len(code):010d}".encode() + code
