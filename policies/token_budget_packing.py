"""Token-budget packing: value every turn (recency, errors, the best scores, clarification answers),
pack the most valuable first until the budget is full, and emit the packed turns in chronological
order with placeholders for the gaps. The newest turn always goes first."""
from __future__ import annotations

import bisect

from .base import BuiltContext, Message, PolicyInput, messages_tokens
from .common import ParametrizedPolicy, check_int
from .facts import direction_of, turn_facts, turn_steps
from .fitting import Layout, fit_layout, history_turns
from .full_history import built
from .hard_cap import own_budget

HALF_LIFE_TURNS = 4.0  # recency value halves every 4 turns back
W_RECENCY = 1.0
W_ERROR = 0.6
W_BEST = 1.2  # the turn with the best score
W_TOP = 0.6  # turns with the 2nd..TOP_N-th best scores
TOP_N = 3
W_CLARIFICATION = 0.8


def turn_values(turns: list[list[Message]], direction: str) -> dict[int, float]:
    """Turn index -> value (the newest turn: infinity)."""
    n = len(turns)
    facts = [turn_facts(turn_steps(turn, i)) for i, turn in enumerate(turns)]
    pick = max if direction == "maximize" else min
    best_of = {i: pick(f.scores) for i, f in enumerate(facts) if f.scores}
    ranked = sorted(best_of, key=lambda i: (-best_of[i] if direction == "maximize" else best_of[i], -i))
    values: dict[int, float] = {}
    for i, f in enumerate(facts):
        value = W_RECENCY * 0.5 ** ((n - 1 - i) / HALF_LIFE_TURNS)
        value += W_ERROR if f.error else 0.0
        value += W_CLARIFICATION if f.clarification else 0.0
        values[i] = value
    for rank, i in enumerate(ranked[:TOP_N]):
        values[i] += W_BEST if rank == 0 else W_TOP
    if n:
        values[n - 1] = float("inf")
    return values


class TokenBudgetPacking(ParametrizedPolicy):
    name = "token_budget_packing"
    description = "pack the most valuable turns (recent, errors, best scores, clarifications) into budget_tokens"

    def __init__(self, budget_tokens: int = 8000):
        self.budget_tokens = check_int("budget_tokens", budget_tokens, minimum=1)

    def select(self, request: PolicyInput) -> BuiltContext:
        budget = own_budget(request, self.budget_tokens, "the packing budget")
        turns = history_turns(request.history)
        values = turn_values(turns, direction_of(request.preamble))
        layout = Layout(request.preamble, turns, {}, request.counter, priority=values)
        sizes = [messages_tokens(turn, request.counter) for turn in turns]
        total, order = layout.tokens(), []  # order: shown indices, sorted

        def gap(first: int, last: int) -> int:
            return layout.gap_tokens(first, last) if first <= last else 0

        for index in sorted(values, key=lambda i: (-values[i], -i)):
            at = bisect.bisect(order, index)
            before = order[at - 1] if at else -1
            after = order[at] if at < len(order) else len(turns)
            delta = sizes[index] + gap(before + 1, index - 1) + gap(index + 1, after - 1) - gap(before + 1, after - 1)
            if total + delta <= budget or index == len(turns) - 1:
                layout.set_turn(index, turns[index])
                order.insert(at, index)
                total += delta
        return built(fit_layout(layout, budget))
