"""Named constants of the sandbox contract that every provider shares.

Labels mark what ctxeval started (so `ctxeval clean` and an interrupted run find it again); the
secure defaults are what an isolating provider applies to every sandbox unless it has a stronger
equivalent of its own. Providers import them from here; docker.py re-exports them for old imports.
"""
from __future__ import annotations

# Labels on every sandbox (the engine's labels for docker; a provider without labels keeps them in
# `spec.labels` only).
LABEL_MANAGED = "ctxeval.managed"
LABEL_RUN = "ctxeval.run"
LABEL_EPISODE = "ctxeval.episode"
LABEL_ROLE = "ctxeval.role"
LABEL_DEADLINE = "ctxeval.deadline"  # UNIX time at which the sandbox ends itself

# How long a sandbox outlives its wall budget before it ends itself, whatever became of the process
# that started it (the host watchdog acts first; this covers a driver killed or lost).
DEADLINE_GRACE_SECONDS = 120.0

# Where the grader writes its grade: a scratch folder every provider maps somewhere of its own.
OUTPUT_MOUNT = "/output"

# Secure defaults.
AGENT_UID = 1000  # the agent's code never runs as root
AGENT_USER = f"{AGENT_UID}:{AGENT_UID}"
NETWORK_MODE = "none"  # no network at all
NOFILE_LIMIT = 4096  # open files per process
MAX_FILE_BYTES = 1024 * 1024 * 1024  # RLIMIT_FSIZE: no single file over 1 GiB
DEFAULT_REUSE_EPISODES = 20  # episodes one warm sandbox serves before it is retired (`--reuse-limit`)
