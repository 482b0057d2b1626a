"""`ctxeval build --push REGISTRY`: tag images as REGISTRY/ctxeval/<name>:<hash> and push them.

The Docker SDK does not raise when a push fails: the daemon reports the failure as a status line
with an `error` key in the stream, so every line is checked. Credentials come from the Docker
config (`docker login`, credential helpers) unless a username is given, with the password in
DOCKER_PASSWORD; they are passed to the daemon and never printed.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from ..errors import CtxevalError

Log = Callable[[str], None]

# host[:port] then optional lowercase path components (Docker's reference grammar, simplified)
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = re.compile(rf"^{_HOST}(?::[0-9]+)?(?:/{_COMPONENT})*$")


@dataclass(frozen=True)
class PushedImage:
    source: str   # the local tag, e.g. ctxeval/base:3e495e8d9237f90f
    remote: str   # REGISTRY/ctxeval/base:3e495e8d9237f90f
    digest: str   # the manifest digest the registry stored, sha256:...
    size: int | None = None

    @property
    def reference(self) -> str:
        """The pinned reference: REGISTRY/ctxeval/<name>@sha256:..."""
        return f"{self.remote.rsplit(':', 1)[0]}@{self.digest}"


def normalize_registry(registry: str) -> str:
    """`localhost:5000`, `ghcr.io/org`, ...: no scheme, no trailing slash, lowercase path."""
    value = (registry or "").strip().rstrip("/")
    if "://" in value:
        raise CtxevalError(f"--push {registry!r}: give the registry without a scheme (e.g. localhost:5000 "
                           "or ghcr.io/org)")
    if not _REGISTRY.match(value):
        raise CtxevalError(f"--push {registry!r}: not a registry reference (host[:port][/path], lowercase path, "
                           "e.g. localhost:5000 or ghcr.io/org)")
    return value


def registry_host(registry: str) -> str:
    return registry.split("/", 1)[0]


def remote_tag(registry: str, local_tag: str) -> str:
    """ctxeval/bundle-toy:abc + ghcr.io/org -> ghcr.io/org/ctxeval/bundle-toy:abc"""
    return f"{registry}/{local_tag}"


def split_tag(reference: str) -> tuple[str, str]:
    repository, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        raise CtxevalError(f"{reference!r} has no tag")
    return repository, tag


def registry_auth(username: str | None, env: Mapping[str, str] = os.environ) -> dict[str, str] | None:
    """None (the Docker config's credentials) or {username, password} with DOCKER_PASSWORD."""
    if not username:
        return None
    password = env.get("DOCKER_PASSWORD")
    if not password:
        raise CtxevalError("--registry-username needs the password (or token) in the DOCKER_PASSWORD "
                           "environment variable")
    return {"username": username, "password": password}


def _message(line: dict) -> str:
    detail = line.get("errorDetail") or {}
    return str(line.get("error") or detail.get("message") or line).strip()


def push_image(client, local_tag: str, registry: str, auth_config: dict | None = None,
               log: Log | None = None) -> PushedImage:
    """Tag `local_tag` as REGISTRY/<local_tag> and push it; any error line fails with the registry named."""
    import docker.errors

    log = log or (lambda message: None)
    remote = remote_tag(registry, local_tag)
    repository, tag = split_tag(remote)
    try:
        image = client.images.get(local_tag)
    except docker.errors.ImageNotFound:
        raise CtxevalError(f"cannot push {local_tag}: no such image here") from None
    if not image.tag(repository, tag):
        raise CtxevalError(f"cannot tag {local_tag} as {remote}")
    log(f"pushing {remote}")
    digest, size = None, None
    try:
        stream = client.images.push(repository, tag=tag, stream=True, decode=True, auth_config=auth_config)
        for line in stream:
            if not isinstance(line, dict):
                continue
            if "error" in line or "errorDetail" in line:
                raise CtxevalError(f"pushing {remote} to registry {registry} failed: {_message(line)}")
            aux = line.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest, size = aux["Digest"], aux.get("Size")
            status = line.get("status")
            if status:
                log(f"{remote}: {line.get('id', '')} {status}".replace("  ", " "))
    except docker.errors.APIError as exc:
        raise CtxevalError(f"pushing {remote} to registry {registry} failed: "
                           f"{exc.explanation or exc}") from None
    if not digest:
        raise CtxevalError(f"pushing {remote} to registry {registry} ended without a digest from the registry")
    return PushedImage(source=local_tag, remote=remote, digest=digest, size=size)


def push_images(client, local_tags: Iterable[str], registry: str, auth_config: dict | None = None,
                log: Log | None = None) -> list[PushedImage]:
    """Push each image in order (the base first, so its layers are there when the bundles follow)."""
    registry = normalize_registry(registry)
    seen: set[str] = set()
    pushed = []
    for local_tag in local_tags:
        if local_tag in seen:
            continue
        seen.add(local_tag)
        pushed.append(push_image(client, local_tag, registry, auth_config, log))
    return pushed
