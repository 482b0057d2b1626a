"""Context policies: what part of an episode's history the model sees at each call."""
from __future__ import annotations

from typing import Any

from .base import ContextPolicy, Message, count_tokens
from .full_history import FullHistory

POLICIES: dict[str, type[ContextPolicy]] = {FullHistory.name: FullHistory}


def resolve_policy(name: str, params: dict[str, Any] | None = None) -> ContextPolicy:
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown context policy {name!r}; known: {', '.join(sorted(POLICIES))}") from None
    return cls(**(params or {}))


__all__ = ["ContextPolicy", "Message", "POLICIES", "count_tokens", "resolve_policy"]
