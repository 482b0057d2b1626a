"""Warm sandboxes kept across the episodes of one run.

An episode leases a sandbox for its spec (same image, limits and mounts: `pool_key`); the pool
hands it an idle one of that key when it has one, else starts a new one. Either way the lease is
prepared (the runner's verified reset: every agent process killed, /tmp, /dev/shm and the
workspace emptied, the starter restored, its digest compared with the starter's); a reused
sandbox that fails it is retired and a new one is started in its place. On release the episode
says whether something may have left state behind (`retire_reason`); such a sandbox, and one
that has served `max_episodes`, is stopped, any other is parked (idle, every agent process gone)
for the next episode. `close()` stops what is left. A provider opts in with `reusable = True`
and implements park() and renew().
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .base import Sandbox, SandboxSpec
from .defaults import DEFAULT_REUSE_EPISODES, LABEL_EPISODE

# Episode outcomes after which a container may hold state a reset does not reach (a full tmpfs,
# a cgroup at its limits, a workspace the engine could not read): it is retired.
RETIRING_OUTCOMES = ("memory_killed", "pids_limit", "sandbox_died", "disk_full", "artefacts_refused")
# Sandbox events that say the same of the sandbox's own machinery.
RETIRING_EVENTS = ("exec_abandoned", "freeze_failed", "channel_fallback")


@dataclass
class Lease:
    sandbox: Sandbox
    key: str
    episodes_before: int  # episodes this sandbox served before this one (0: started for it)

    @property
    def reused(self) -> bool:
        return self.episodes_before > 0


def pool_key(backend: str, spec: SandboxSpec, options: Any) -> str:
    """Sandboxes are interchangeable when everything but the episode's own label is the same."""
    labels = {k: v for k, v in spec.labels.items() if k != LABEL_EPISODE}
    return repr((backend, dataclasses.replace(spec, labels=labels), options))


def retire_reason(outcomes: dict[str, int], events: Iterable[dict[str, Any]], failed: bool) -> str | None:
    """Why a sandbox must not serve another episode, or None."""
    for name in RETIRING_OUTCOMES:
        if outcomes.get(name):
            return name
    for event in events:
        if event.get("event") in RETIRING_EVENTS:
            return str(event["event"])
        if event.get("event") == "quiesce" and event.get("outcome") != "ok":
            return "quiesce_failed"
    return "episode_failed" if failed else None


class SandboxPool:
    def __init__(self, max_episodes: int = DEFAULT_REUSE_EPISODES):
        if max_episodes < 1:
            raise ValueError("a sandbox serves at least one episode")
        self.max_episodes = max_episodes
        self._idle: dict[str, list[tuple[Sandbox, int]]] = {}
        self._lock = threading.Lock()
        self.retired: list[str] = []  # why each retired sandbox was stopped
        self.started = 0

    def acquire(self, key: str, make: Callable[[], Sandbox], prepare: Callable[[Sandbox], None]) -> Lease:
        """A prepared sandbox for `key`: an idle one renewed, else a new one started."""
        while (idle := self._take(key)) is not None:
            sandbox, served = idle
            try:
                if sandbox.renew():
                    prepare(sandbox)
                    return Lease(sandbox, key, served)
                self._retire(sandbox, "gone_while_idle")
            except Exception:
                self._retire(sandbox, "reset_failed")
        sandbox = make()
        self.started += 1
        try:
            sandbox.start()
            prepare(sandbox)
        except BaseException:
            sandbox.stop()
            raise
        return Lease(sandbox, key, 0)

    def release(self, lease: Lease, reason: str | None) -> str | None:
        """Park the sandbox for another episode, or stop it; returns why it was retired (or None)."""
        if reason is None and lease.episodes_before + 1 >= self.max_episodes:
            reason = "episode_limit" if self.max_episodes > 1 else "no_reuse"
        if reason is None and not lease.sandbox.park():
            reason = "park_failed"
        if reason is not None:
            self._retire(lease.sandbox, reason)
            return reason
        with self._lock:
            self._idle.setdefault(lease.key, []).append((lease.sandbox, lease.episodes_before + 1))
        return None

    def close(self) -> None:
        with self._lock:
            idle = [sandbox for entries in self._idle.values() for sandbox, _ in entries]
            self._idle.clear()
        for sandbox in idle:
            sandbox.stop()

    def _take(self, key: str) -> tuple[Sandbox, int] | None:
        with self._lock:
            entries = self._idle.get(key)
            return entries.pop() if entries else None

    def _retire(self, sandbox: Sandbox, reason: str) -> None:
        self.retired.append(reason)
        sandbox.stop()
