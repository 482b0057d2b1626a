"""The model contract shared by offline stand-ins and real API clients."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from policies.base import Message, ToolCall

from ..errors import CallCancelled, CtxevalError


@dataclass
class Usage:
    """What one model call consumed (tokens as the API reports them) and what it cost."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0


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


class ModelCallCancelled(ModelError, CallCancelled):
    """A model call cut by its deadline: no reply. EpisodeContext.call_model records it as cancelled
    and ends the episode on its wall-time budget (not as an error)."""


class Model(abc.ABC):
    name: str = "abstract"

    def count_tokens(self, text: str) -> int:
        from policies.base import count_tokens
        return count_tokens(text)

    @abc.abstractmethod
    def complete(self, messages: list[Message], tools: list[ToolSchema] | None = None,
                 response_schema: dict[str, Any] | None = None, *, deadline: float | None = None) -> ModelResponse:
        """One call. Offline models must decide only from `messages` (and `tools`). `deadline` (a
        time.monotonic() value: the end of the episode's wall-time budget) bounds a call that waits
        on a server; cut by it, the call raises ModelCallCancelled. Offline models answer at once."""
