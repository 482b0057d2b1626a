"""Provider classes by short name or by import path (`package.module:Class`), each imported on first
use and checked to be a concrete subclass of the contract it provides.

What a registry of pluggable providers needs, whatever they provide: models/registry.py keeps model
providers in one and sandbox/registry.py sandbox providers, so registering, lazy import and the
subclass and abstract checks exist once; nothing in it is about models or sandboxes.
"""
from __future__ import annotations

import inspect
import pkgutil
import threading
from typing import Generic, Mapping, TypeVar

from .errors import CtxevalError

T = TypeVar("T")


class ProviderTable(Generic[T]):
    """Names -> import paths of `base` subclasses. Errors call them `kind` providers ("model", "sandbox")
    and `base` by `contract`, its public name; `reserved` names cannot be registered."""

    def __init__(self, kind: str, base: type[T], contract: str, builtin: Mapping[str, str],
                 reserved: tuple[str, ...] = ()):
        self.kind, self.base, self.contract, self.reserved = kind, base, contract, reserved
        self._paths = dict(builtin)
        self._loaded: dict[str, type[T]] = {}
        self._lock = threading.Lock()

    def copy(self) -> ProviderTable[T]:
        """A table with the same names, to register in without touching this one (tests)."""
        with self._lock:
            return ProviderTable(self.kind, self.base, self.contract, self._paths, self.reserved)

    def register(self, name: str, import_path: str) -> None:
        """Give a provider class (`package.module:Class`) a short name; imported on first use."""
        if not name or ":" in name or name in self.reserved:
            raise CtxevalError(f"a {self.kind} provider's name must be a plain word, not {name!r}")
        if import_path.count(":") != 1:
            raise CtxevalError(f"a {self.kind} provider is given as package.module:Class, not {import_path!r}")
        with self._lock:
            self._paths[name] = import_path
            self._loaded.pop(name, None)

    def names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._paths)

    def knows(self, name: str) -> bool:
        with self._lock:
            return name in self._paths

    def get(self, key: str) -> type[T] | None:
        """The class of a registered name or of an import path; None for an unknown plain name."""
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            import_path = self._paths.get(key) or (key if ":" in key else None)
        if import_path is None:
            return None
        cls = self._import(import_path)
        with self._lock:
            self._loaded[key] = cls
        return cls

    def _import(self, import_path: str) -> type[T]:
        what = f"{self.kind} provider {import_path!r}"
        try:
            cls = pkgutil.resolve_name(import_path)
        except (ImportError, AttributeError, ValueError) as exc:
            raise CtxevalError(f"{what} cannot be imported: {type(exc).__name__}: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise CtxevalError(f"{what} is not a subclass of {self.contract}")
        if inspect.isabstract(cls):
            raise CtxevalError(f"{what} does not implement: {', '.join(sorted(cls.__abstractmethods__))}")
        return cls


__all__ = ["ProviderTable"]
