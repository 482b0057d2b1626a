"""The model contract shared by offline stand-ins and real API clients."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from policies.base import Message, ToolCall

from ..episode.context import Usage
from ..errors import CtxevalError


@dataclass(frozen=True)
class ToolSchema:
    """A tool offered to the model: name, description and JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass
class ModelResponse:
    text: str
    usage: Usage
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None


class ModelError(CtxevalError):
    """A model call failed for good (after retries): the episode ends with this recorded."""


class Model(abc.ABC):
    name: str = "abstract"

    def count_tokens(self, text: str) -> int:
        from policies.base import count_tokens
        return count_tokens(text)

    @abc.abstractmethod
    def complete(self, messages: list[Message], tools: list[ToolSchema] | None = None,
                 response_schema: dict[str, Any] | None = None) -> ModelResponse:
        """One call. Offline models must decide only from `messages` (and `tools`)."""
