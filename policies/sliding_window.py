"""Sliding window: only the last K turns; one placeholder says how many came before."""
from __future__ import annotations

from .base import BuiltContext, PolicyInput
from .common import ParametrizedPolicy, check_int
from .fitting import Layout, fit_layout, history_turns
from .full_history import built


class SlidingWindow(ParametrizedPolicy):
    name = "sliding_window"
    description = "the last k_turns turns; a placeholder for the rest"

    def __init__(self, k_turns: int = 6):
        self.k_turns = check_int("k_turns", k_turns, minimum=1)

    def select(self, request: PolicyInput) -> BuiltContext:
        turns = history_turns(request.history)
        first = max(0, len(turns) - self.k_turns)
        layout = Layout(request.preamble, turns, {i: turns[i] for i in range(first, len(turns))}, request.counter)
        return built(fit_layout(layout, request.budget_tokens))
