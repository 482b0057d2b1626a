"""An environment episode as agentic mode records it, and what a context policy makes of it.

The preamble is agentic mode's (system prompt, task statement with its target line, the agent's
memory when the policy wants one, clarification hints); each step adds the action as an assistant tool call and its answer as the tool's message,
in the step's turn. `context()` is the message list the policy would send a model now: the
`context` observation of an environment made with a policy.
"""
from __future__ import annotations

import json
from typing import Any

from policies.base import KIND_ACTION, KIND_OBSERVATION, Message, PolicyInput, ToolCall
from policies.config import PolicyConfig

from ..agents.agentic import agentic_prompt
from ..agents.prompts import preamble, task_message
from ..episode.context import EpisodeContext


class Transcript:
    def __init__(self, ctx: EpisodeContext, policy_config: PolicyConfig | None,
                 hints: list[tuple[str, str]] | None = None):
        self.ctx, self.policy_config = ctx, policy_config
        self.policy = policy_config.create() if policy_config is not None else None
        clarification = policy_config.clarification if policy_config else "neutral"
        self.system = agentic_prompt(ctx, self.policy, clarification)  # gives ctx its memory, if the policy wants one
        self.task = task_message(ctx)
        self.hints = hints if hints is not None else []
        self.history: list[Message] = []

    def preamble(self) -> list[Message]:
        return preamble(self.system, self.task, self.ctx.memory, self.hints)

    def record(self, turn: int, call: ToolCall, content: str, meta: dict[str, Any]) -> None:
        self.history.append(Message("assistant", "", tool_calls=[call], kind=KIND_ACTION, turn=turn))
        self.history.append(Message("tool", content, tool_call_id=call.id, name=call.name, kind=KIND_OBSERVATION,
                                    turn=turn, meta=meta))

    def context(self) -> list[Message]:
        """The policy's messages for the next model call (full history without a policy)."""
        if self.policy is None:
            return [*self.preamble(), *self.history]
        built = self.policy.build(PolicyInput(self.preamble(), self.history, self.policy_config.budget_tokens))
        return built.messages

    def context_json(self) -> str:
        return json.dumps([m.as_dict() for m in self.context()], ensure_ascii=False)
