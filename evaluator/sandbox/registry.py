"""Sandbox providers by name: the built-in ones, those a plugin registers, any `package.module:Class`.

A provider is a `Sandbox` subclass, given as an import path and imported on first use (so the
docker SDK is never imported where docker is not used). Adding one is one new module and, to give
it a short name, one `register_provider` call (or one line in BUILTIN_PROVIDERS); without a name
it is used by its import path: `ctxeval run --backend mypkg.sandboxes:PodmanSandbox`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from ..errors import CtxevalError
from ..provider_table import ProviderTable
from .base import Sandbox, SandboxOptions, SandboxSpec

AUTO = "auto"
BUILTIN_PROVIDERS = {
    "docker": "evaluator.sandbox.docker:DockerSandbox",
    "local": "evaluator.sandbox.local:LocalSandbox",
}
AUTO_ORDER = ("docker", "local")  # "auto" takes the first available, and warns when it is not isolated

_TABLE = ProviderTable("sandbox", Sandbox, "evaluator.sandbox.Sandbox", BUILTIN_PROVIDERS, reserved=(AUTO,))


def register_provider(name: str, import_path: str) -> None:
    """Give a provider class (`package.module:Class`) a short backend name; imported on first use."""
    _TABLE.register(name, import_path)


def provider_names() -> tuple[str, ...]:
    """The registered backend names (import paths are accepted besides these)."""
    return _TABLE.names()


def provider(backend: str) -> type[Sandbox]:
    """The provider class of a backend name or of a `package.module:Class` import path."""
    cls = _TABLE.get(backend)
    if cls is None:
        raise CtxevalError(f"unknown sandbox backend {backend!r}; choose one of {', '.join(provider_names())}, "
                           f"{AUTO}, or a provider class as package.module:Class")
    return cls


def resolve_backend(requested: str, warn: Callable[[str], None] | None = None) -> str:
    """"auto" picks the first available of AUTO_ORDER (docker when an engine answers, else local,
    and says so when the pick is not isolated); an explicit choice is kept if it is available."""
    if requested == AUTO:
        return _auto(warn)
    cls = provider(requested)
    if not cls.available():
        raise CtxevalError(f"the {requested} backend was asked for but {cls.unavailable_hint}")
    return requested


def _auto(warn: Callable[[str], None] | None) -> str:
    passed_over: list[str] = []
    for name in AUTO_ORDER:
        cls = provider(name)
        if cls.available():
            if not cls.isolated and warn:
                why = "; ".join(passed_over) or "no isolated backend is available"
                warn(f"{why}: using the {name.upper()} backend, which is NOT isolated")
            return name
        passed_over.append(cls.unavailable_hint)
    raise CtxevalError("no sandbox backend is available: " + "; ".join(passed_over))


def options_from_mapping(cls: type[Sandbox], mapping: Mapping[str, Any]) -> SandboxOptions:
    """A provider's typed options from a mapping; an option it does not take is an error."""
    accepted = [f.name for f in dataclasses.fields(cls.options_type)]
    if mapping.get("runtime") and not cls.supports_runtime:
        raise CtxevalError(f"the {cls.backend} sandbox backend runs no container runtime "
                           f"(runtime {mapping['runtime']!r} was asked for); leave --runtime out")
    unknown = sorted(set(mapping) - set(accepted))
    if unknown:
        raise CtxevalError(f"the {cls.backend} sandbox backend takes no option {unknown[0]!r}; "
                           f"it accepts: {', '.join(accepted) or 'none'}")
    return cls.options_type(**mapping)


def options_for(backend: str | type[Sandbox], given: SandboxOptions | Mapping[str, Any] | None = None,
                **named: Any) -> SandboxOptions:
    """A provider's typed options from typed options, a mapping and/or keywords (a keyword given as
    None counts as not given): what create_sandbox and every caller that passes options on uses."""
    cls = provider(backend) if isinstance(backend, str) else backend
    named = {key: value for key, value in named.items() if value is not None}
    if isinstance(given, SandboxOptions):
        if not isinstance(given, cls.options_type):
            raise CtxevalError(f"{type(given).__name__} are not options of the {cls.backend} sandbox backend "
                               f"(it takes {cls.options_type.__name__})")
        if not named:
            return given
        given = {f.name: getattr(given, f.name) for f in dataclasses.fields(given)}
    return options_from_mapping(cls, {**(given or {}), **named})


def create_sandbox(backend: str, spec: SandboxSpec, options: SandboxOptions | Mapping[str, Any] | None = None,
                   **named: Any) -> Sandbox:
    """A new (not started) sandbox of a backend; options as options_for takes them."""
    cls = provider(backend)
    return cls(spec, options_for(cls, options, **named))
