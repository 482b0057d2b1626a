"""Full history: every turn, as it happened. The baseline every other policy is compared with.

Under a budget it behaves as a hard cap: the oldest turns give way first, leaving a placeholder
(and if the newest turn alone is too big, its outputs are cut, with a marker).
"""
from __future__ import annotations

from .base import BuiltContext, PolicyInput
from .common import ParametrizedPolicy
from .fitting import Layout, fit_layout, history_turns


def full_layout(request: PolicyInput) -> Layout:
    turns = history_turns(request.history)
    return Layout(request.preamble, turns, dict(enumerate(turns)), request.counter)


def built(layout: Layout, **extra) -> BuiltContext:
    """The BuiltContext of a fitted layout (`build` fills in the token counts)."""
    return BuiltContext(messages=layout.messages(), tokens=0, full_tokens=0, dropped_turns=layout.dropped_turns,
                        turn_states=layout.turn_states(), **extra)


class FullHistory(ParametrizedPolicy):
    name = "full_history"
    description = "every turn, as it happened (oldest turns give way only to the budget)"

    def __init__(self) -> None:
        pass

    def select(self, request: PolicyInput) -> BuiltContext:
        return built(fit_layout(full_layout(request), request.budget_tokens))
