"""The model contract shared by offline stand-ins and real API clients."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

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


@dataclass(frozen=True)
class ModelSpec:
    """A model spec taken apart: `text` as given, the `provider` part (a registered name or an
    import path `package.module:Class`) and the `name` part after it (may hold colons)."""

    text: str
    provider: str
    name: str


class Model(abc.ABC):
    """A model the agent talks to. As a provider (models/registry.py), a subclass declares how
    create_model builds it from `<provider>:<name>`: the keyword options it takes, whether it takes a
    base URL (else it is not passed on) and how to write the name part in a hint."""

    name: str = "abstract"
    options: ClassVar[tuple[str, ...]] = ()
    takes_base_url: ClassVar[bool] = False
    spec_name: ClassVar[str] = "<name>"

    @classmethod
    def from_spec(cls, spec: ModelSpec, base_url: str | None, options: dict[str, Any]) -> Model:
        """A model of this provider: the name part is required, options must be ones it declares."""
        if not spec.name:
            raise CtxevalError(f"model {spec.text!r} names nothing: use {spec.provider}:{cls.spec_name}")
        unknown = sorted(set(options) - set(cls.options))
        if unknown:
            raise CtxevalError(f"{spec.provider} models take no option {', '.join(unknown)}; "
                               f"known: {', '.join(cls.options) or 'none'}")
        if cls.takes_base_url:
            return cls(spec.name, base_url=base_url, **options)  # type: ignore[call-arg]
        return cls(spec.name, **options)  # type: ignore[call-arg]

    def count_tokens(self, text: str) -> int:
        from policies.base import count_tokens
        return count_tokens(text)

    @abc.abstractmethod
    def complete(self, messages: list[Message], tools: list[ToolSchema] | None = None,
                 response_schema: dict[str, Any] | None = None, *, deadline: float | None = None) -> ModelResponse:
        """One call. Offline models must decide only from `messages` (and `tools`). `deadline` (a
        time.monotonic() value: the end of the episode's wall-time budget) bounds a call that waits
        on a server; cut by it, the call raises ModelCallCancelled. Offline models answer at once."""
