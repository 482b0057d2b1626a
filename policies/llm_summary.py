"""LLM summary: turns older than the last K are folded into one rolling summary message.

The summary is refreshed only when at least `summarize_every` turns have fallen out of the window
since the last refresh (it is cached on the instance: one instance per episode); until then those
turns stay verbatim (as all do while the summary would be bigger than the turns it covers). The summarizer is `request.summarizer` (billed separately: every call made
is returned in `BuiltContext.summarizer_calls`), or the deterministic extractive one when the
request has none.
"""
from __future__ import annotations

from .base import BuiltContext, PolicyInput
from .common import ParametrizedPolicy, check_int
from .fitting import Layout, fit_layout, history_turns, stand_in_pays
from .full_history import built
from .summary import RollingSummary


class LLMSummary(ParametrizedPolicy):
    name = "llm_summary"
    description = "a rolling summary of turns older than the last keep_last, refreshed every summarize_every turns"

    def __init__(self, keep_last: int = 4, summarize_every: int = 4):
        self.keep_last = check_int("keep_last", keep_last, minimum=0)
        self.summarize_every = check_int("summarize_every", summarize_every, minimum=1)
        self.summary = RollingSummary()

    def select(self, request: PolicyInput) -> BuiltContext:
        turns = history_turns(request.history)
        due = max(0, len(turns) - self.keep_last)
        call = self.summary.update(turns, due, self.summarize_every, request)
        covered = self.summary.covered if self.summary.text is not None else 0
        lead = [self.summary.message()] if covered else []
        if lead and not stand_in_pays(lead, turns[:covered], request.counter):
            lead, covered = [], 0  # the turns are cheaper than their summary
        layout = Layout(request.preamble, turns, {i: turns[i] for i in range(covered, len(turns))}, request.counter,
                        lead=lead, covered_upto=covered)
        return built(fit_layout(layout, request.budget_tokens), summarizer_calls=[call] if call else [])
