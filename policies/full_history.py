"""Full history: every turn, as it happened. The baseline every other policy is compared with."""
from __future__ import annotations

from .base import ContextPolicy, Message


class FullHistory(ContextPolicy):
    name = "full_history"

    def build(self, preamble: list[Message], history: list[Message], budget_tokens: int | None) -> list[Message]:
        return [*preamble, *history]
