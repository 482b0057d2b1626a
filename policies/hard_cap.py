"""Hard cap: full history under a fixed context size, whatever the request's budget; the effective
budget is the smaller of the two. hard_cap_8k / _32k / _128k are the same policy with another default."""
from __future__ import annotations

from .base import BudgetTooSmall, BuiltContext, PolicyInput, messages_tokens
from .common import ParametrizedPolicy, check_int
from .fitting import effective_budget, fit_layout
from .full_history import built, full_layout


def own_budget(request: PolicyInput, own: int | None, what: str) -> int | None:
    """min(own, request budget); BudgetTooSmall when the preamble alone exceeds `own`."""
    budget = effective_budget(own, request.budget_tokens)
    if budget is not None:
        needed = messages_tokens(request.preamble, request.counter)
        if needed > budget:
            raise BudgetTooSmall(f"the task statement needs {needed} tokens; {what} is {budget}")
    return budget


class HardCap(ParametrizedPolicy):
    name = "hard_cap"
    description = "full history under a hard cap of cap_tokens (oldest turns give way first)"

    def __init__(self, cap_tokens: int = 32000):
        self.cap_tokens = check_int("cap_tokens", cap_tokens, minimum=1)

    def select(self, request: PolicyInput) -> BuiltContext:
        budget = own_budget(request, self.cap_tokens, "the hard cap")
        return built(fit_layout(full_layout(request), budget))


def sized_hard_cap(cap_tokens: int) -> type[HardCap]:
    """`hard_cap_<n>k`: the hard cap under its own name, with `cap_tokens` as its default."""
    def __init__(self: HardCap, cap_tokens: int = cap_tokens) -> None:
        HardCap.__init__(self, cap_tokens)

    size = f"{cap_tokens // 1000}k"
    return type(f"HardCap{size}", (HardCap,), {
        "__init__": __init__, "__module__": __name__, "name": f"hard_cap_{size}",
        "description": f"full history under a hard cap of {cap_tokens:,} tokens"})


SIZED_HARD_CAPS = tuple(sized_hard_cap(cap) for cap in (8000, 32000, 128000))
