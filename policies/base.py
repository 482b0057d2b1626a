"""The policy contract: (task, history, budget) -> the messages sent to the model."""
from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Message:
    role: str  # system | user | assistant | tool
    content: str
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [])}


def count_tokens(text: str) -> int:
    """A model-agnostic estimate (about 4 characters per token) used when no tokenizer applies."""
    return (len(text) + 3) // 4


def messages_tokens(messages: list[Message]) -> int:
    return sum(count_tokens(m.content) + 4 for m in messages)


class ContextPolicy(abc.ABC):
    name: str = "abstract"

    def params(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params()}

    @abc.abstractmethod
    def build(self, preamble: list[Message], history: list[Message], budget_tokens: int | None) -> list[Message]:
        """Messages for the next call. `preamble` (system + task) is always kept whole."""
