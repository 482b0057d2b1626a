"""Models the agent talks to: `scripted:<name>` offline stand-ins now; real APIs plug in here."""
from __future__ import annotations

from ..errors import CtxevalError
from .base import Model, ModelResponse


def create_model(spec: str) -> Model:
    """`scripted:<name>` -> a deterministic offline model."""
    provider, _, name = spec.partition(":")
    if provider == "scripted":
        from .scripted import SCRIPTED_MODELS
        if name not in SCRIPTED_MODELS:
            raise CtxevalError(f"unknown scripted model {name!r}; known: {', '.join(sorted(SCRIPTED_MODELS))}")
        return SCRIPTED_MODELS[name]()
    raise CtxevalError(f"unknown model {spec!r}: use scripted:<name> (e.g. scripted:hill_climb)")


__all__ = ["Model", "ModelResponse", "create_model"]
