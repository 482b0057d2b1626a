"""The policy contract: (preamble, history, budget) -> the messages sent to the model.

History is a list of `Message`s grouped into *turns*: an assistant message and the tool results
that answer its tool calls (or, in controller mode, a proposal and the user message reporting
its result). Policies drop, mask or summarise whole turns only, so a tool call is never
separated from its result. The preamble (system prompt, task statement, clarification hints) is
always kept whole.
"""
from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

# Message kinds (semantic tags policies may use; providers ignore them).
KIND_TASK = "task"
KIND_SYSTEM = "system"
KIND_HINTS = "hints"
KIND_ACTION = "action"  # an assistant message (tool calls or a proposal)
KIND_OBSERVATION = "observation"  # a tool result or a reported result
KIND_PLACEHOLDER = "placeholder"  # stands in for dropped content
KIND_SUMMARY = "summary"
KIND_STATE = "state"
KIND_RETRIEVED = "retrieved"
KIND_MEMORY = "memory"  # the agent's own memory, pinned in the preamble by policies that want it

# Turn states of a context map (one character per history turn; see BuiltContext.turn_states).
STATE_KEPT = "K"  # shown whole, as it happened
STATE_MASKED = "M"  # shown, transformed (masked, cleared, truncated)
STATE_SUMMARISED = "S"  # represented by a lead message (summary, state record)
STATE_DROPPED = "D"  # not in the context at all (a placeholder at most)

MESSAGE_OVERHEAD_TOKENS = 4


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any] | str  # a str when the model sent arguments that are not valid JSON

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass
class Message:
    role: str  # system | user | assistant | tool
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None  # the tool's name, on tool messages
    kind: str = ""
    turn: int | None = None  # index of the turn this message belongs to
    meta: dict[str, Any] = field(default_factory=dict)  # structured facts (config, score, error...)

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["tool_calls"] = [c.as_dict() for c in self.tool_calls]
        return {k: v for k, v in record.items() if v not in (None, [], {}, "")}


TokenCounter = Callable[[str], int]


def count_tokens(text: str) -> int:
    """A model-agnostic estimate (about 4 characters per token) used when no tokenizer applies."""
    return (len(text) + 3) // 4


def message_tokens(message: Message, counter: TokenCounter = count_tokens) -> int:
    calls = "".join(f"{c.name}{c.arguments}" for c in message.tool_calls)
    return counter(message.content) + (counter(calls) if calls else 0) + MESSAGE_OVERHEAD_TOKENS


def messages_tokens(messages: list[Message], counter: TokenCounter = count_tokens) -> int:
    return sum(message_tokens(m, counter) for m in messages)


def group_turns(history: list[Message]) -> list[list[Message]]:
    """Split history into turns: each starts at an assistant message; tool/observation
    messages stay with the assistant message they answer."""
    turns: list[list[Message]] = []
    for message in history:
        if message.role == "assistant" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


@dataclass
class SummarizerResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float = 0.0


Summarizer = Callable[[list[Message]], SummarizerResult]


@dataclass
class PolicyInput:
    preamble: list[Message]
    history: list[Message]
    budget_tokens: int | None = None
    counter: TokenCounter = count_tokens
    summarizer: Summarizer | None = None


@dataclass
class BuiltContext:
    messages: list[Message]
    tokens: int
    full_tokens: int  # what full history would have sent
    dropped_turns: int = 0
    summarizer_calls: list[SummarizerResult] = field(default_factory=list)
    turn_states: str = ""  # one STATE_* per history turn, oldest first (the call's context map)

    @property
    def compression_ratio(self) -> float:
        return self.tokens / self.full_tokens if self.full_tokens else 1.0


class BudgetTooSmall(ValueError):
    """The preamble alone does not fit the budget: no policy can honour it."""


class ContextPolicy(abc.ABC):
    name: str = "abstract"
    description: str = ""
    # True: the agent is offered the `memory` tool and its memory is pinned in the preamble
    # (after the task statement); the policy then manages the rest of the history as it likes.
    wants_memory: bool = False

    def params(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params()}

    def build(self, request: PolicyInput) -> BuiltContext:
        full = messages_tokens([*request.preamble, *request.history], request.counter)
        preamble_tokens = messages_tokens(request.preamble, request.counter)
        if request.budget_tokens is not None and preamble_tokens > request.budget_tokens:
            raise BudgetTooSmall(f"the task statement needs {preamble_tokens} tokens; budget is {request.budget_tokens}")
        built = self.select(request)
        built.full_tokens = full
        built.tokens = messages_tokens(built.messages, request.counter)
        return built

    @abc.abstractmethod
    def select(self, request: PolicyInput) -> BuiltContext:
        """Choose the messages; `build` adds the accounting and the preamble check."""
