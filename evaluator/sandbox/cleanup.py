"""Remove containers and volumes ctxeval left behind (a crashed or killed run), by label."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .docker import LABEL_MANAGED, LABEL_RUN


@dataclass
class CleanupReport:
    containers: list[str]
    volumes: list[str]


def cleanup(client: Any = None, run_id: str | None = None) -> CleanupReport:
    if client is None:
        import docker
        client = docker.from_env(timeout=60)
    filters = {"label": [f"{LABEL_MANAGED}=1"] + ([f"{LABEL_RUN}={run_id}"] if run_id else [])}
    containers = []
    for container in client.containers.list(all=True, filters=filters):
        container.remove(force=True)
        containers.append(container.name)
    volumes = []
    for volume in client.volumes.list(filters=filters):
        try:
            volume.remove(force=True)
            volumes.append(volume.name)
        except Exception:
            pass  # still in use by a container of another process
    return CleanupReport(containers, volumes)
