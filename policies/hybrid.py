"""Hybrid: observation masking always (outputs older than the last mask_window turns), plus a
rolling summary of the older turns refreshed every summary_every turns. Summarised turns leave the
context (once the summary is smaller than their masked form); the others stay, outputs masked."""
from __future__ import annotations

from .base import BuiltContext, PolicyInput
from .common import ParametrizedPolicy, check_int
from .fitting import fit_layout, history_turns, stand_in_pays
from .full_history import built
from .observation_masking import masked_layout
from .summary import RollingSummary


class Hybrid(ParametrizedPolicy):
    name = "hybrid"
    description = "masking beyond mask_window turns plus a rolling summary every summary_every turns"

    def __init__(self, mask_window: int = 3, summary_every: int = 5):
        self.mask_window = check_int("mask_window", mask_window, minimum=0)
        self.summary_every = check_int("summary_every", summary_every, minimum=1)
        self.summary = RollingSummary()

    def select(self, request: PolicyInput) -> BuiltContext:
        turns = history_turns(request.history)
        due = max(0, len(turns) - self.mask_window)
        call = self.summary.update(turns, due, self.summary_every, request)
        covered = self.summary.covered if self.summary.text is not None else 0
        layout = masked_layout(request, turns, self.mask_window)
        lead = [self.summary.message()] if covered else []
        if lead and stand_in_pays(lead, [layout.shown[i] for i in range(covered)], request.counter):
            for index in range(covered):
                layout.drop_turn(index)
            layout.lead, layout.covered_upto = lead, covered
        return built(fit_layout(layout, request.budget_tokens), summarizer_calls=[call] if call else [])
