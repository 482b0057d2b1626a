"""Sandboxes: one contract (base.Sandbox), two providers (docker, local), a small registry."""
from __future__ import annotations

from typing import Any, Callable

from ..errors import CtxevalError
from .base import Sandbox, SandboxLimits, SandboxSpec, Scratch

BACKENDS = ("docker", "local")


def docker_engine_answers() -> bool:
    try:
        import docker
        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


def resolve_backend(requested: str, warn: Callable[[str], None] | None = None) -> str:
    """"auto" picks docker when an engine answers, else local (and says so); explicit choices are kept."""
    if requested == "auto":
        if docker_engine_answers():
            return "docker"
        if warn:
            warn("no Docker engine answers: using the LOCAL backend, which is NOT isolated")
        return "local"
    if requested not in BACKENDS:
        raise CtxevalError(f"unknown sandbox backend {requested!r}; choose one of {', '.join(BACKENDS)} or auto")
    if requested == "docker" and not docker_engine_answers():
        raise CtxevalError("the docker backend was asked for but no Docker engine answers "
                           "(is the daemon running and DOCKER_HOST right?)")
    return requested


def create_sandbox(backend: str, spec: SandboxSpec, **options: Any) -> Sandbox:
    if backend == "docker":
        from .docker import DockerSandbox
        return DockerSandbox(spec, **options)
    if backend == "local":
        from .local import LocalSandbox
        return LocalSandbox(spec)
    raise CtxevalError(f"unknown sandbox backend {backend!r}")


__all__ = ["BACKENDS", "Sandbox", "SandboxLimits", "SandboxSpec", "Scratch", "create_sandbox", "resolve_backend",
           "docker_engine_answers"]
