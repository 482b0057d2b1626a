"""Probes without a sandbox: planting, asking, answering from context, grading answers, and what
the offline models recall and obey."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from evaluator.episode.context import EpisodeContext, EpisodeMetrics
from evaluator.episode.probe_answers import grade_answer
from evaluator.episode.probes import ProbeRunner, fact_tag, planted_text, probe_message
from evaluator.models.base import ModelResponse
from evaluator.models.memory import complies, probe_reply, split_notes, visible_constraints, visible_results
from evaluator.models.scripted import HillClimb, React
from evaluator.models.base import Usage
from policies.base import Message


@dataclass(frozen=True)
class Probe:  # the fields of bundles.manifest.ProbeSpec that probes use
    id: str
    fact: str
    plant_after_call: int
    ask_before_calls: tuple[int, ...]
    question: str
    answer_text: str | None = None
    answer_number: float | None = None
    tolerance: float = 0.0
    decisive: bool = False
    constraint: dict[str, Any] | None = None


LEAK = Probe("leak_column", "The data owner says column f23 leaks the label; never use it.", 2, (4, 9),
             "Which column must never be used?", answer_text="f23", decisive=True,
             constraint={"drop_features": ["f23"]})
BASELINE = Probe("baseline_cv", "The starter's CV accuracy was 0.7812.", 1, (3,), "What was the starter's CV accuracy?",
                 answer_number=0.7812, tolerance=0.0005)


@dataclass
class FakeEvents:
    emitted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def emit(self, kind: str, **fields: Any) -> None:
        self.emitted.append((kind, fields))


class RecordingModel:
    """Answers every probe with a fixed text and remembers what it was sent."""

    name = "test:recording"

    def __init__(self, answer: str = "f23"):
        self.answer, self.seen = answer, []

    def complete(self, messages, **_options):
        self.seen.append(list(messages))
        return ModelResponse(text=self.answer, usage=Usage(prompt_tokens=100, completion_tokens=3, cost_usd=0.01))


def probe_context(runner: ProbeRunner) -> EpisodeContext:
    """An EpisodeContext with only what probing touches (no bundle, no sandbox)."""
    ctx = EpisodeContext.__new__(EpisodeContext)
    ctx.metrics, ctx.events, ctx.outcomes, ctx.probes = EpisodeMetrics(), FakeEvents(), Counter(), runner
    from evaluator.tracing.spans import NO_TRACING
    ctx.trace, ctx.started = NO_TRACING.with_attributes(), 1000.0
    return ctx


def test_planting_puts_each_fact_first_once_at_its_call():
    runner = ProbeRunner([LEAK, BASELINE], enabled=False)
    assert runner.plant(0, "baseline result") == "baseline result"
    first = runner.plant(1, "RESULT: {}")
    assert first.startswith(BASELINE.fact) and first.endswith("RESULT: {}") and LEAK.fact not in first
    second = runner.plant(2, "RESULT: {\"score\": 1}")
    assert second.split("\n")[:3] == [LEAK.fact, fact_tag(LEAK), 'CONSTRAINT: {"drop_features":["f23"]}']
    assert runner.plant(2, "another observation of call 2") == "another observation of call 2"
    assert runner.planted == {"baseline_cv": 1, "leak_column": 2}


def test_asking_is_a_side_call_billed_apart_and_recorded():
    runner = ProbeRunner([LEAK, BASELINE], enabled=True)
    ctx = probe_context(runner)
    runner.plant(1, "x")
    runner.plant(2, "y")
    context = [Message("user", "task"), Message("user", planted_text(LEAK) + "\ny")]
    model = RecordingModel("It is f23.")
    runner.ask(ctx, model, 4, context)
    assert len(model.seen) == 1 and model.seen[0][:-1] == context  # the policy's context, then the question
    assert model.seen[0][-1].content.startswith("PROBE leak_column: ")
    assert context == [Message("user", "task"), Message("user", planted_text(LEAK) + "\ny")]  # untouched
    assert ctx.metrics.probe_tokens == 103 and ctx.metrics.probe_cost_usd == 0.01
    assert ctx.metrics.llm_calls == 0 and ctx.metrics.prompt_tokens == 0  # not the agent's call
    assert ctx.started == 1000.0 + ctx.metrics.probe_seconds  # its time is given back to the wall budget
    (record,) = [r.as_record() for r in runner.records]
    assert record == {"id": "leak_column", "decisive": True, "planted_call": 2, "asked_call": 4, "distance": 2,
                           "status": "answered", "fact_in_context": True, "answer": "It is f23.", "correct": True,
                           "prompt_tokens": 100, "completion_tokens": 3, "cost_usd": 0.01}
    runner.ask(ctx, RecordingModel("unknown"), 9, [Message("user", "task")])
    assert runner.records[-1].fact_in_context is False and runner.records[-1].correct is False


def test_finish_lists_not_planted_and_not_asked_never_as_misses():
    runner = ProbeRunner([LEAK, BASELINE], enabled=True)
    ctx = probe_context(runner)
    runner.plant(1, "x")
    runner.ask(ctx, RecordingModel("0.7812"), 3, [Message("user", planted_text(BASELINE))])
    records = runner.finish(calls_made=3)  # the episode ended after call 3: leak never planted
    by_call = {(r["id"], r["asked_call"]): r for r in records}
    assert by_call["baseline_cv", 3]["correct"] is True
    assert by_call["leak_column", 4]["status"] == "not_planted" and by_call["leak_column", 4]["correct"] is None
    assert by_call["leak_column", 9]["status"] == "not_planted"
    assert len(records) == 3
    off = ProbeRunner([LEAK], enabled=False)
    assert off.finish(10) == [] and off.state == "off"


def test_answers_are_graded_normalised_and_garbage_is_wrong():
    assert grade_answer(LEAK, "F23.")
    assert grade_answer(LEAK, "the column `f23`, because it leaks")
    assert not grade_answer(LEAK, "f2") and not grade_answer(LEAK, "f233") and not grade_answer(LEAK, "")
    assert not grade_answer(LEAK, "\x00\ufffd garbled")
    assert grade_answer(BASELINE, "about 0.7810") and not grade_answer(BASELINE, "0.79")
    assert not grade_answer(BASELINE, "I refuse to answer") and not grade_answer(BASELINE, "nan")


def test_offline_models_answer_probes_from_their_context_only():
    question = probe_message(LEAK)
    with_fact = [Message("user", "task"), Message("user", planted_text(LEAK)), question]
    assert probe_reply(with_fact) == "f23"
    assert probe_reply([Message("user", "task"), question]) == "unknown"
    number = [Message("user", planted_text(BASELINE)), probe_message(BASELINE)]
    assert grade_answer(BASELINE, HillClimb().complete(number).text)
    assert React().complete(with_fact).text == "f23"
    assert HillClimb().complete([Message("user", "task"), question]).text == "unknown"


def test_constraints_and_results_are_read_from_what_is_visible():
    text = planted_text(LEAK)
    assert visible_constraints([Message("user", text)]) == {"drop_features": ["f23"]}
    assert complies({"model": "knn", "drop_features": ["f1", "f23"]}, {"drop_features": ["f23"]})
    assert not complies({"model": "knn"}, {"drop_features": ["f23"]})
    state = Message("user", 'Best so far: score=0.91 (turn 3, train) config={"model":"knn"}\n'
                            '- turn 2: score=0.8 {"model":"knn","n_neighbors":3}')
    found = visible_results([state])
    assert {"config": {"model": "knn"}, "score": 0.91} in found
    assert {"config": {"model": "knn", "n_neighbors": 3}, "score": 0.8} in found
    notes, rest = split_notes(text + "\nRESULT: {}")
    assert notes == text.split("\n") and rest == "RESULT: {}"


def test_hill_climb_obeys_a_visible_constraint_and_forgets_a_dropped_one():
    schema = {"type": "object", "properties": {"config": {"type": "object", "properties": {
        "model": {"enum": ["a", "b"]}, "drop_features": {"type": "array"}}, "required": ["model"]}}}
    target = Message("user", 'TARGET: {"direction": "maximize", "goal": null, "seed": 0, "open_ended": true}')
    leaked = Message("user", 'RESULT: {"config": {"model": "a"}, "score": 0.99, "steps_left": 9}')
    planted = Message("user", planted_text(LEAK) + '\nRESULT: {"config": {"model": "a", "drop_features": ["f23"]}, '
                                                   '"score": 0.8, "steps_left": 2}')
    seen = json.loads(HillClimb().complete([target, leaked, planted], response_schema=schema).text)
    assert seen["stop"] is True and seen["config"] == {"model": "a", "drop_features": ["f23"]}  # not the 0.99 leak
    forgot = Message("user", 'RESULT: {"config": {"model": "a", "drop_features": ["f23"]}, "score": 0.8, '
                             '"steps_left": 2}')
    blind = json.loads(HillClimb().complete([target, leaked, forgot], response_schema=schema).text)
    assert blind["stop"] is True and blind["config"] == {"model": "a"}  # the leaked one: the fact is gone
    early = Message("user", planted_text(LEAK) + '\nRESULT: {"config": {"model": "a"}, "score": 0.99, "steps_left": 20}')
    proposal = json.loads(HillClimb().complete([target, early], response_schema=schema).text)
    assert proposal.get("stop") is not True and proposal["config"]["drop_features"] == ["f23"]
