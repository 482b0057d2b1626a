"""Policies built on the agent's own memory (`wants_memory`): the agent is offered the `memory`
tool, and whatever it wrote there is pinned after the task statement on every call, so what the
policy clears from the history survives if the agent saved it.

- agent_memory: context editing as it is paired with a memory tool: once the context would exceed
  threshold_tokens, every tool result but the last keep_last is cleared (tool-result clearing);
  the calls stay paired with their placeholders.
- memory_masking: memory plus observation masking: outputs older than the last window_turns
  turns are masked on every call, whatever the size; every action stays.
"""
from __future__ import annotations

from .observation_masking import ObservationMasking
from .tool_result_clearing import ToolResultClearing


class AgentMemory(ToolResultClearing):
    name = "agent_memory"
    description = "the agent's memory pinned; past threshold_tokens, all tool results but the last keep_last cleared"
    wants_memory = True

    def __init__(self, threshold_tokens: int = 6000, keep_last: int = 2):
        super().__init__(threshold_tokens=threshold_tokens, keep_last=keep_last)


class MemoryMasking(ObservationMasking):
    name = "memory_masking"
    description = "the agent's memory pinned; outputs older than the last window_turns turns masked"
    wants_memory = True

    def __init__(self, window_turns: int = 2):
        super().__init__(window_turns=window_turns)
