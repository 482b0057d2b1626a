"""Sandboxes: one contract (base.Sandbox), providers found by name or import path (registry.py).

Built in: docker (isolated, runs the bundle's image) and local (NOT isolated). Code outside this
package asks a provider what it can do (`provider(backend).needs_image`, `.isolated`,
`.supports_runtime`), never which one it is.
"""
from __future__ import annotations

from .base import Sandbox, SandboxLimits, SandboxOptions, SandboxSpec, Scratch
from .registry import (AUTO, create_sandbox, options_for, options_from_mapping, provider, provider_names,
                       register_provider, resolve_backend)

def docker_engine_answers() -> bool:
    """Whether a Docker engine answers (the docker provider's `available()`)."""
    return provider("docker").available()


__all__ = ["AUTO", "Sandbox", "SandboxLimits", "SandboxOptions", "SandboxSpec", "Scratch",
           "create_sandbox", "docker_engine_answers", "options_for", "options_from_mapping", "provider",
           "provider_names", "register_provider", "resolve_backend"]
