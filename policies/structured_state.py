"""Structured state: a typed record of the experiment (configs tried and their scores, the best so
far, errors seen, open questions, counts), extracted from the whole history and rendered as one
message (kind "state"), plus the last K turns verbatim. The older turns themselves are omitted
(the state message says so) once the record is smaller than they are; until then they are shown."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .base import KIND_STATE, BuiltContext, Message, PolicyInput
from .common import ParametrizedPolicy, check_int
from .facts import Step, better, compact_json, direction_of, history_steps
from .fitting import Layout, fit_layout, history_turns, stand_in_pays
from .full_history import built


@dataclass
class Trial:
    turn: int
    tool: str
    config: dict[str, Any] | None
    score: float | None
    ok: bool | None
    error: str | None = None


@dataclass
class ErrorSeen:
    message: str
    tool: str
    first_turn: int
    last_turn: int
    count: int = 1


@dataclass
class ExperimentState:
    direction: str = "maximize"
    turns: int = 0
    trials: list[Trial] = field(default_factory=list)
    best: Trial | None = None
    errors: list[ErrorSeen] = field(default_factory=list)
    clarifications: list[tuple[str, str]] = field(default_factory=list)  # (question, answer)
    open_questions: list[str] = field(default_factory=list)
    tool_calls: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # facts and constraints stated, in order, once each

    @property
    def failed_trials(self) -> int:
        return sum(1 for t in self.trials if t.error is not None)

    @classmethod
    def from_steps(cls, steps: list[Step], turns: int, direction: str = "maximize") -> "ExperimentState":
        state = cls(direction=direction, turns=turns)
        calls: Counter[str] = Counter()
        errors: dict[tuple[str, str], ErrorSeen] = {}
        asked: dict[str, str | None] = {}
        for step in steps:
            calls[step.tool] += 1
            state.notes += [note for note in step.notes if note not in state.notes]
            if step.config is not None or step.score is not None:
                trial = Trial(step.turn, step.tool, step.config, step.score, step.ok, step.error)
                state.trials.append(trial)
                if trial.score is not None and (state.best is None or better(trial.score, state.best.score, direction)):
                    state.best = trial
            if step.error is not None:
                key = (step.tool, step.error)
                if key in errors:
                    errors[key].count += 1
                    errors[key].last_turn = step.turn
                else:
                    errors[key] = ErrorSeen(step.error, step.tool, step.turn, step.turn)
            if step.tool == "clarify" and step.question:
                if step.answer is not None:
                    asked[step.question] = step.answer
                else:
                    asked.setdefault(step.question, None)
        state.errors = sorted(errors.values(), key=lambda e: e.last_turn)
        state.clarifications = [(q, a) for q, a in asked.items() if a is not None]
        state.open_questions = [q for q, a in asked.items() if a is None]
        state.tool_calls = dict(sorted(calls.items()))
        return state

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self, omitted: int, max_errors: int = 12) -> str:
        """Most useful first (a cut keeps the head): best, notes, counts, questions, errors, then
        the trials newest first."""
        span = "turn 1" if omitted == 1 else f"turns 1-{omitted}"
        lines = [f"[ctxeval: experiment state extracted by the context policy; {span} are omitted]"]
        goal = "higher" if self.direction == "maximize" else "lower"
        if self.best is not None:
            lines.append(f"Best so far: score={self.best.score:.6g} (turn {self.best.turn}, {self.best.tool}) "
                         f"config={compact_json(self.best.config, 400)}  [{goal} is better]")
        else:
            lines.append(f"Best so far: none scored yet [{goal} is better]")
        if self.notes:
            lines.append("Notes stated so far (facts, constraints):")
            lines += [f"- {compact_json(note, 400)}" for note in self.notes]
        calls = ", ".join(f"{k} {v}" for k, v in self.tool_calls.items()) or "none"
        lines.append(f"Counts: turns {self.turns}; trials {len(self.trials)} ({self.failed_trials} failed); "
                     f"distinct errors {len(self.errors)}; actions: {calls}")
        if self.open_questions:
            lines.append("Open questions (asked, not answered):")
            lines += [f"- {compact_json(q, 200)}" for q in self.open_questions]
        if self.clarifications:
            lines.append("Clarifications:")
            lines += [f"- Q: {compact_json(q, 160)} A: {compact_json(a, 240)}" for q, a in self.clarifications]
        if self.errors:
            lines.append("Errors seen (newest last):")
            for e in self.errors[-max_errors:]:
                times = f" x{e.count}" if e.count > 1 else ""
                lines.append(f"- turn {e.last_turn} {e.tool}{times}: {e.message}")
        if self.trials:
            lines.append("Configs tried (newest first):")
            for t in reversed(self.trials):
                if t.error:
                    outcome = f"ERROR {t.error[:100]}"
                else:
                    outcome = f"score={t.score:.6g}" if t.score is not None else "no score"
                config = "-" if t.config is None else \
                    json.dumps(t.config, sort_keys=True, separators=(",", ":"), default=str)
                lines.append(f"- turn {t.turn}: {outcome} {config}")
        return "\n".join(lines)


def extract_state(request: PolicyInput, turns: list[list[Message]] | None = None) -> ExperimentState:
    turns = history_turns(request.history) if turns is None else turns
    return ExperimentState.from_steps(history_steps(turns), len(turns), direction_of(request.preamble))


class StructuredState(ParametrizedPolicy):
    name = "structured_state"
    description = "a typed experiment record (trials, best, errors, questions) plus the last keep_last turns"

    def __init__(self, keep_last: int = 2):
        self.keep_last = check_int("keep_last", keep_last, minimum=0)
        self.state: ExperimentState | None = None  # the last record built (for inspection)

    def select(self, request: PolicyInput) -> BuiltContext:
        turns = history_turns(request.history)
        self.state = extract_state(request, turns)
        covered = max(0, len(turns) - self.keep_last)
        shown = {i: turns[i] for i in range(covered, len(turns))}
        lead = [Message("user", self.state.render(covered), kind=KIND_STATE, meta={"truncate": "head"})] \
            if covered else []
        if lead and not stand_in_pays(lead, turns[:covered], request.counter):
            lead, covered = [], 0  # the turns are cheaper than the record: show them instead
            shown = dict(enumerate(turns))
        layout = Layout(request.preamble, turns, shown, request.counter, lead=lead, covered_upto=covered)
        return built(fit_layout(layout, request.budget_tokens))
