"""Planted facts and probes: what a context policy let the agent remember.

A bundle's probe plants a fact in the observation answering one model call, and asks a question
about it before later calls. Planting always happens (probes on or off), so the agent's contexts
never depend on whether it is probed. Asking is a side call: the evaluator sends the model the
context the policy just built plus the question; the answer never enters the history, and its
tokens and time are billed apart (see EpisodeContext.call_probe).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from policies.base import Message
from policies.marks import CONSTRAINT_MARK, FACT_MARK, PROBE_MARK

from .probe_answers import grade_answer

if TYPE_CHECKING:
    from ..bundles.manifest import ProbeSpec
    from .context import EpisodeContext

KIND_PROBE = "probe"
ANSWER_CHARS = 2000
STATUS_ANSWERED = "answered"
STATUS_NOT_PLANTED = "not_planted"
STATUS_NOT_ASKED = "not_asked"

PROBE_INSTRUCTIONS = ("This question is not part of the task and changes nothing in it. Answer from what you "
                      "have seen so far in this episode, in a few words (just the value). If you do not know, "
                      "answer 'unknown'.")


def expected_value(probe: ProbeSpec) -> str | float | None:
    return probe.answer_text if probe.answer_text is not None else probe.answer_number


def fact_tag(probe: ProbeSpec) -> str:
    """The machine-readable form of a fact (what an offline model can look up in its context)."""
    return f"{FACT_MARK}{probe.id} = {json.dumps(expected_value(probe))}]"


def planted_text(probe: ProbeSpec) -> str:
    lines = [probe.fact, fact_tag(probe)]
    if probe.constraint:
        lines.append(f"{CONSTRAINT_MARK} {json.dumps(probe.constraint, sort_keys=True, separators=(',', ':'))}")
    return "\n".join(lines)


def probe_message(probe: ProbeSpec) -> Message:
    return Message("user", f"{PROBE_MARK} {probe.id}: {probe.question}\n{PROBE_INSTRUCTIONS}", kind=KIND_PROBE)


@dataclass
class ProbeRecord:
    id: str
    decisive: bool
    planted_call: int | None
    asked_call: int
    distance: int | None
    status: str
    fact_in_context: bool | None = None
    answer: str | None = None
    correct: bool | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["cost_usd"] = round(self.cost_usd, 6)
        return record


class ProbeRunner:
    """One episode's probes: plants facts into observations and asks questions before calls."""

    def __init__(self, probes: list[ProbeSpec] | tuple[ProbeSpec, ...], enabled: bool):
        self.probes = list(probes)
        self.enabled = enabled and bool(self.probes)
        self.planted: dict[str, int] = {}  # probe id -> the call whose observation carries the fact
        self.records: list[ProbeRecord] = []

    @property
    def state(self) -> str:
        return "on" if self.enabled else "off"

    def plant(self, call: int, content: str) -> str:
        """The observation answering model call `call`, with every fact due at that call put first."""
        due = [p for p in self.probes if p.plant_after_call == call and p.id not in self.planted]
        if not due:
            return content
        for probe in due:
            self.planted[probe.id] = call
        return "\n".join(planted_text(p) for p in due) + "\n" + content

    def ask(self, ctx: "EpisodeContext", model: Any, call: int, messages: list[Message]) -> None:
        """Before model call `call`: ask each probe due now, with the context the policy built."""
        if not self.enabled:
            return
        for probe in (p for p in self.probes if call in p.ask_before_calls):
            self.records.append(self._ask_one(ctx, model, probe, call, messages))

    def _ask_one(self, ctx: "EpisodeContext", model: Any, probe: ProbeSpec, call: int,
                 messages: list[Message]) -> ProbeRecord:
        planted = self.planted.get(probe.id)
        if planted is None:
            return ProbeRecord(probe.id, probe.decisive, None, call, None, STATUS_NOT_PLANTED)
        present = any(probe.fact in m.content for m in messages)
        response = ctx.call_probe(model, [*messages, probe_message(probe)], probe_id=probe.id)
        usage = response.usage if response is not None else None
        answer = (response.text if response is not None else "")[:ANSWER_CHARS]
        record = ProbeRecord(probe.id, probe.decisive, planted, call, call - planted, STATUS_ANSWERED,
                             fact_in_context=present, answer=answer, correct=grade_answer(probe, answer))
        if usage is not None:
            record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            record.cost_usd = usage.cost_usd
        ctx.events.emit("probe", **record.as_record())
        return record

    def finish(self, calls_made: int) -> list[dict[str, Any]]:
        """Every (probe, asking call) pair: asked ones as recorded, the rest not planted / not asked."""
        if not self.enabled:
            return []
        asked = {(r.id, r.asked_call) for r in self.records}
        rest = []
        for probe in self.probes:
            for call in probe.ask_before_calls:
                if (probe.id, call) in asked or call <= calls_made:
                    continue
                planted = self.planted.get(probe.id)
                status = STATUS_NOT_ASKED if planted is not None else STATUS_NOT_PLANTED
                rest.append(ProbeRecord(probe.id, probe.decisive, planted, call,
                                        None if planted is None else call - planted, status))
        records = sorted([*self.records, *rest], key=lambda r: (r.asked_call, r.id))
        return [r.as_record() for r in records]
