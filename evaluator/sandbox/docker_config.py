"""The docker backend's container, as the engine is asked to create it: every hardening option,
the mounts, the labels `ctxeval clean` finds it by, and the environment its programs see.

Kept apart from the sandbox's lifecycle (docker.py) so what a container is allowed to do can be
read, and reviewed, in one place.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import ROLE_GRADER, SandboxSpec
from .defaults import (AGENT_UID, LABEL_DEADLINE, LABEL_MANAGED, LABEL_ROLE, MAX_FILE_BYTES, NETWORK_MODE,
                       NOFILE_LIMIT)
from .inside import SUPERVISOR_BOOTSTRAP
from .staging import stage

# Secure defaults, all applied to every container (with those of defaults.py).
SUPERVISOR_USER = "0:0"  # PID 1 and the exec helpers; see SUPERVISOR_CAPS
CAP_DROP = ["ALL"]
# What PID 1 and the exec helpers need: end the agent's processes (KILL), start commands as the
# agent (SETUID, SETGID) with an empty bounding set (SETPCAP). The agent's processes hold none.
SUPERVISOR_CAPS = ["KILL", "SETUID", "SETGID", "SETPCAP"]
SECURITY_OPT = ["no-new-privileges:true"]
SHM_SIZE = "64m"
LOG_DRIVER = "json-file"
LOG_OPTIONS = {"max-size": "1m", "max-file": "1"}  # the engine's log of a container: 1 MiB at most
PYTHON = ["python3", "-I", "-S", "-c"]  # isolated: no cwd, no environment, no site on the path

WORKSPACE_MOUNT = "/workspace"
TOOLS_MOUNT = "/opt/ctxeval/tools"
DATA_MOUNT = "/data"
GRADER_MOUNT = "/grader"
PRIVATE_MOUNT = "/private"


def _tmpfs_volume(mount: str, size_mb: int, owner: int, read_only: bool = False) -> Any:
    from docker.types import DriverConfig, Mount
    options = {"type": "tmpfs", "device": "tmpfs", "o": f"size={size_mb}m,uid={owner},gid={owner},mode=0755"}
    return Mount(mount, None, type="volume", read_only=read_only, driver_config=DriverConfig("local", options))


def container_labels(spec: SandboxSpec, started: float) -> dict[str, str]:
    """What `ctxeval clean` and `leftovers` find a container by (cleanup.py); its deadline label is
    past the last episode it may serve."""
    return {LABEL_MANAGED: "1", LABEL_ROLE: spec.role, LABEL_DEADLINE: f"{started + spec.lifetime_seconds:.0f}",
            **spec.labels}


def container_mounts(spec: SandboxSpec) -> list[Any]:
    """Size-capped tmpfs volumes for the workspace and scratch folders; host folders read-only, from
    their neutral staged copies."""
    from docker.types import Mount
    owner = 0 if spec.workspace_read_only else AGENT_UID
    mounts = [_tmpfs_volume(WORKSPACE_MOUNT, spec.limits.workspace_mb, owner)]
    mounts += [_tmpfs_volume(s.mount, s.size_mb, AGENT_UID if s.writable else 0) for s in spec.scratch]
    for host, target in ((spec.tools_dir, TOOLS_MOUNT), (spec.data_dir, DATA_MOUNT),
                         (spec.grader_dir, GRADER_MOUNT), (spec.private_dir, PRIVATE_MOUNT)):
        if host is not None:
            mounts.append(Mount(target, str(stage(Path(host))), type="bind", read_only=True))
    return mounts


def container_environment(spec: SandboxSpec) -> dict[str, str]:
    """Where the sandbox's programs find the workspace, tools, data (and, for the grader, its own files)."""
    env = {"CTXEVAL_WORKSPACE": WORKSPACE_MOUNT, "CTXEVAL_TOOLS": TOOLS_MOUNT,
           "CTXEVAL_DATA": DATA_MOUNT, "HOME": "/tmp", "TMPDIR": "/tmp"}
    if spec.role == ROLE_GRADER:
        env.update(CTXEVAL_GRADER=GRADER_MOUNT, CTXEVAL_PRIVATE=PRIVATE_MOUNT)
    env.update({s.env: s.mount for s in spec.scratch})
    return {**env, **spec.env}


def container_config(api: Any, spec: SandboxSpec, deadline: float, runtime: str | None) -> dict[str, Any]:
    """The engine's create request: read-only root, no network, capabilities dropped, limits on
    memory, processes, files and logs, auto-removed with its volumes; PID 1 is the supervisor."""
    from docker.types import LogConfig, Ulimit
    limits = spec.limits
    host_config = api.create_host_config(
        network_mode=NETWORK_MODE, read_only=True, cap_drop=CAP_DROP, cap_add=SUPERVISOR_CAPS,
        security_opt=SECURITY_OPT, pids_limit=limits.pids, mem_limit=f"{limits.memory_mb}m",
        memswap_limit=f"{limits.memory_mb}m", nano_cpus=int(limits.cpus * 1e9),
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.tmpfs_mb}m,mode=1777"}, shm_size=SHM_SIZE,
        mounts=container_mounts(spec), auto_remove=True, runtime=runtime,
        log_config=LogConfig(type=LOG_DRIVER, config=LOG_OPTIONS),
        ulimits=[Ulimit(name="nofile", soft=NOFILE_LIMIT, hard=NOFILE_LIMIT),
                 Ulimit(name="fsize", soft=MAX_FILE_BYTES, hard=MAX_FILE_BYTES)])
    config = api.create_container_config(
        spec.image, [*PYTHON, SUPERVISOR_BOOTSTRAP, f"{deadline:.3f}"], user=SUPERVISOR_USER,
        detach=True, stdin_open=True, hostname="sandbox", labels=container_labels(spec, deadline - spec.deadline_seconds),
        environment=container_environment(spec), working_dir="/", host_config=host_config)
    config["StdinOnce"] = True  # the engine closes PID 1's stdin when our connection drops
    return config
