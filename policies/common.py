"""What the policies share besides fitting: named parameters and their checks."""
from __future__ import annotations

import inspect
from typing import Any

from .base import ContextPolicy


class ParameterError(ValueError):
    """A policy parameter with a bad value; `param` names it (presets report it as a JSON path)."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.reason = message


def check_int(name: str, value: Any, minimum: int = 0, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(name, f"must be an integer{' or null' if allow_none else ''}, got {value!r}")
    if value < minimum:
        raise ParameterError(name, f"must be >= {minimum}, got {value}")
    return value


class ParametrizedPolicy(ContextPolicy):
    """A policy whose named parameters are the keyword arguments of its `__init__` (with
    defaults); each subclass stores them as attributes of the same names."""

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        signature = inspect.signature(cls.__init__)
        return {name: p.default for name, p in signature.parameters.items()
                if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}

    @classmethod
    def check_param_names(cls, params: dict[str, Any]) -> None:
        unknown = sorted(set(params) - set(cls.default_params()))
        if unknown:
            known = ", ".join(cls.default_params()) or "none"
            raise ValueError(f"unknown parameter(s) for context policy {cls.name!r}: {', '.join(unknown)} "
                             f"(known: {known})")

    def params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.default_params()}
