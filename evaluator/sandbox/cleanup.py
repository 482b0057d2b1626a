"""Finding and removing containers ctxeval left behind, by label: the docker provider's
`leftovers` and `cleanup_leftovers`, and the records every provider's versions return.

Every sandbox normally ends itself (its PID 1 exits when the process that started it goes away,
or at its deadline, and the engine removes it with its volumes). What remains is what an engine
could not end: a paused container, a runtime that ignores the exit, a sandbox whose driver is
still alive but stuck. `cleanup` removes a run's containers (or all of ctxeval's), and
`expired`/`leftovers` find those past their deadline or belonging to other runs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .defaults import LABEL_DEADLINE, LABEL_MANAGED, LABEL_RUN


@dataclass
class CleanupReport:
    """What a cleanup removed: sandboxes (containers, for docker) and volumes, by name."""

    containers: list[str]
    volumes: list[str]


@dataclass(frozen=True)
class Leftover:
    """One sandbox a provider holds: its name, its run, its state, when it ends itself."""

    name: str
    run: str | None
    status: str
    deadline: float | None

    def expired(self, now: float) -> bool:
        return self.deadline is not None and self.deadline < now


def _client(client: Any) -> Any:
    if client is None:
        import docker
        client = docker.from_env(timeout=60)
    return client


def _listed(client: Any, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """The engine's list as it is (no per-container inspect: sandboxes remove themselves at any
    moment, and inspecting one that just went would fail)."""
    return client.api.containers(all=True, filters=filters)


def _name(entry: dict[str, Any]) -> str:
    return (entry.get("Names") or ["/" + entry["Id"][:12]])[0].lstrip("/")


def leftovers(client: Any = None, exclude_run: str | None = None) -> list[Leftover]:
    """Every ctxeval container the engine holds (but those of `exclude_run`)."""
    found = []
    for entry in _listed(_client(client), {"label": f"{LABEL_MANAGED}=1"}):
        labels = entry.get("Labels") or {}
        if exclude_run is not None and labels.get(LABEL_RUN) == exclude_run:
            continue
        try:
            deadline = float(labels[LABEL_DEADLINE])
        except (KeyError, ValueError):
            deadline = None
        found.append(Leftover(_name(entry), labels.get(LABEL_RUN), entry.get("State", "?"), deadline))
    return found


def _remove(client: Any, entry: dict[str, Any]) -> bool:
    try:
        client.api.remove_container(entry["Id"], force=True, v=True)
        return True
    except Exception:
        return False  # already being removed (auto-remove) or gone


def cleanup(client: Any = None, run_id: str | None = None, expired_only: bool = False) -> CleanupReport:
    """Remove a run's containers (all of ctxeval's without `run_id`; only those past their deadline
    with `expired_only`) and the labelled volumes no container uses any more."""
    client = _client(client)
    filters = {"label": [f"{LABEL_MANAGED}=1"] + ([f"{LABEL_RUN}={run_id}"] if run_id else [])}
    now = time.time()
    containers = []
    for entry in _listed(client, filters):
        if expired_only:
            try:
                if float((entry.get("Labels") or {}).get(LABEL_DEADLINE, "inf")) >= now:
                    continue
            except ValueError:
                continue
        if _remove(client, entry):
            containers.append(_name(entry))
    volumes = []
    if not expired_only:
        for volume in client.volumes.list(filters=filters):
            try:
                volume.remove(force=True)
                volumes.append(volume.name)
            except Exception:
                pass  # still in use by a container of another process
    return CleanupReport(containers, volumes)
