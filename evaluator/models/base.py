"""The model contract shared by offline and real clients."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from policies.base import Message

from ..episode.context import Usage


@dataclass
class ModelResponse:
    text: str
    usage: Usage
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


class Model(abc.ABC):
    name: str = "abstract"

    @abc.abstractmethod
    def complete(self, messages: list[Message], response_schema: dict[str, Any] | None = None,
                 tools: list[dict[str, Any]] | None = None) -> ModelResponse:
        """One call. Offline models must decide only from `messages`."""
