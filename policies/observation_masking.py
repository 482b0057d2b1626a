"""Observation masking: tool / observation outputs older than the last M turns are replaced by a
short placeholder; the actions (assistant messages, tool calls) all stay. The masked message keeps
its role, tool_call_id, name and kind, so every call still has its answer."""
from __future__ import annotations

from .base import BuiltContext, Message, PolicyInput, TokenCounter
from .common import ParametrizedPolicy, check_int
from .fitting import Layout, fit_layout, history_turns, is_output, replace_output
from .full_history import built


def mask_turn(turn: list[Message], counter: TokenCounter, verb: str = "masked") -> list[Message]:
    return [replace_output(m, verb, counter) if is_output(m) else m for m in turn]


def masked_layout(request: PolicyInput, turns: list[list[Message]], window: int, start: int = 0) -> Layout:
    """Turns [start, n) shown; those before the last `window` with their outputs masked."""
    recent = max(0, len(turns) - window)
    shown = {i: (turns[i] if i >= recent else mask_turn(turns[i], request.counter)) for i in range(start, len(turns))}
    return Layout(request.preamble, turns, shown, request.counter)


class ObservationMasking(ParametrizedPolicy):
    name = "observation_masking"
    description = "outputs older than the last window_turns turns are masked; every action stays"

    def __init__(self, window_turns: int = 3):
        self.window_turns = check_int("window_turns", window_turns, minimum=0)

    def select(self, request: PolicyInput) -> BuiltContext:
        turns = history_turns(request.history)
        return built(fit_layout(masked_layout(request, turns, self.window_turns), request.budget_tokens))
