"""Tool-result clearing: once the context would exceed a threshold, every tool result except the
last N is cleared (placeholder content; the call and its answer stay paired)."""
from __future__ import annotations

from .base import BuiltContext, PolicyInput, messages_tokens
from .common import ParametrizedPolicy, check_int
from .fitting import Layout, fit_layout, history_turns, is_output, replace_output
from .full_history import built


class ToolResultClearing(ParametrizedPolicy):
    name = "tool_result_clearing"
    description = "past threshold_tokens, clear all tool results but the last keep_last"

    def __init__(self, threshold_tokens: int = 8000, keep_last: int = 3):
        self.threshold_tokens = check_int("threshold_tokens", threshold_tokens, minimum=0)
        self.keep_last = check_int("keep_last", keep_last, minimum=0)

    def select(self, request: PolicyInput) -> BuiltContext:
        turns = history_turns(request.history)
        shown = dict(enumerate(turns))
        full = messages_tokens([*request.preamble, *request.history], request.counter)
        if full > self.threshold_tokens:
            outputs = [(i, j) for i, turn in enumerate(turns) for j, m in enumerate(turn) if is_output(m)]
            clear = outputs[:max(0, len(outputs) - self.keep_last)]
            for i, j in clear:
                if shown[i] is turns[i]:
                    shown[i] = list(turns[i])
                shown[i][j] = replace_output(turns[i][j], "cleared", request.counter)
        layout = Layout(request.preamble, turns, shown, request.counter)
        return built(fit_layout(layout, request.budget_tokens))
