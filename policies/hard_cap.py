"""Hard cap: full history under a fixed context size (8k / 32k / 128k tokens), whatever the
request's budget; the effective budget is the smaller of the two."""
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


class HardCap8k(HardCap):
    name = "hard_cap_8k"
    description = "full history under a hard cap of 8,000 tokens"

    def __init__(self, cap_tokens: int = 8000):
        super().__init__(cap_tokens)


class HardCap32k(HardCap):
    name = "hard_cap_32k"
    description = "full history under a hard cap of 32,000 tokens"

    def __init__(self, cap_tokens: int = 32000):
        super().__init__(cap_tokens)


class HardCap128k(HardCap):
    name = "hard_cap_128k"
    description = "full history under a hard cap of 128,000 tokens"

    def __init__(self, cap_tokens: int = 128000):
        super().__init__(cap_tokens)
