"""Structured facts read back from a history: what was done in each turn and what came of it.

Sources, in order of trust: `Message.meta` (set by the evaluator: ok, score, config, error,
outcome, tool, question), tool-call arguments (e.g. `train_and_evaluate {"config": ...}`), a
controller proposal (meta["proposal"] or the JSON in the assistant's content) and the JSON of an
observation ("RESULT: {...}" or a JSON object). Used by the structured-state policy, the
extractive summarizer and the packing policy's value function.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .base import Message
from .fitting import is_output
from .marks import CONSTRAINT_MARK, FACT_TAG, RESULT_MARK

ERROR_OUTCOMES = {"timeout", "error", "killed", "oom", "crash", "failed", "rejected"}
_DIRECTION = re.compile(r'"direction"\s*:\s*"(maximize|minimize)"')
_TRACEBACK = "Traceback (most recent call last)"
# a clarify result that is no answer (besides meta {"answered": false}); the evaluator's clarifier
# says "No matching fact in the dataset context..." when nothing matches
UNANSWERED_PREFIXES = ("no matching fact", "no answer", "unanswered", "i don't know", "unknown")


def split_notes(text: str) -> tuple[list[str], str]:
    """(the notes an observation states, the rest of its text). Notes are a planted fact (its sentence,
    then its tag) and a constraint: the policies that condense history keep them, as a careful
    note-taker would."""
    lines = text.split("\n")
    keep: set[int] = set()
    for i, line in enumerate(lines):
        if FACT_TAG.match(line):
            keep.update({i - 1, i} if i > 0 else {i})
        elif line.startswith(CONSTRAINT_MARK):
            keep.add(i)
    return [lines[i] for i in sorted(keep)], "\n".join(line for i, line in enumerate(lines) if i not in keep)


@dataclass
class Step:
    """One action of a turn (a tool call or a controller proposal) and its outcome."""

    turn: int  # 1-based position of the turn in the history
    tool: str  # tool name; "proposal" for a controller proposal; "message" for plain text
    arguments: dict[str, Any] | str | None = None
    config: dict[str, Any] | None = None
    answered: bool = False  # a result came back
    ok: bool | None = None
    score: float | None = None
    error: str | None = None
    outcome: str | None = None
    text: str = ""  # the result's content
    question: str | None = None  # clarify
    answer: str | None = None  # clarify
    stop: bool = False  # a controller proposal that ends the episode
    notes: list[str] = field(default_factory=list)  # facts and constraints its result stated

    @property
    def failed(self) -> bool:
        return self.error is not None


def _json_object(text: str, anywhere: bool = False) -> dict[str, Any] | None:
    """The JSON object a message carries: after "RESULT:", at its start, or (`anywhere`) after
    some prose, as the controller accepts proposals."""
    text = text.strip()
    if text.startswith(RESULT_MARK):
        text = text[len(RESULT_MARK):].lstrip()
    start = text.find("{") if anywhere else (0 if text.startswith("{") else -1)
    if start < 0:
        return None
    try:
        value = json.JSONDecoder().raw_decode(text[start:])[0]
    except (json.JSONDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _first_line(text: str, limit: int = 200) -> str:
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return line[:limit]


def _error_from_text(text: str) -> str | None:
    if _TRACEBACK in text:
        tail = [s.strip() for s in text[text.index(_TRACEBACK):].splitlines() if s.strip()]
        last = next((s for s in reversed(tail) if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", s)),
                    tail[-1] if tail else "")
        return last[:200] or "traceback"
    if text.lstrip().startswith("ERROR:"):
        return _first_line(text.lstrip()[len("ERROR:"):]) or "error"
    return None


def result_facts(message: Message) -> dict[str, Any]:
    """ok / score / config / error / outcome of one result message (meta first, then its JSON)."""
    facts: dict[str, Any] = {}
    parsed = _json_object(message.content) if "{" in message.content[:200] else None
    for source in (parsed or {}, message.meta):  # meta wins
        for key in ("ok", "score", "config", "error", "outcome", "tool", "question", "answered"):
            if key in source and source[key] is not None:
                facts[key] = source[key]
    if parsed and "score" not in facts and isinstance(parsed.get("output"), dict):
        score = parsed["output"].get("score")
        if _number(score) is not None:
            facts["score"] = score
    facts["score"] = _number(facts.get("score"))
    error = facts.get("error")
    if not error:
        error = _error_from_text(message.content)
    outcome = facts.get("outcome")
    if not error and isinstance(outcome, str) and outcome.lower() in ERROR_OUTCOMES:
        error = f"{outcome}"
    if not error and facts.get("ok") is False:
        error = _first_line(message.content) or "failed"
    facts["error"] = str(error)[:300] if error else None
    return facts


def _proposal(message: Message) -> dict[str, Any] | None:
    proposal = message.meta.get("proposal")
    if isinstance(proposal, dict):
        return proposal
    return _json_object(message.content, anywhere=True)


def _fill(step: Step, result: Message) -> None:
    facts = result_facts(result)
    step.answered = True
    step.ok = facts.get("ok") if isinstance(facts.get("ok"), bool) else (facts["error"] is None)
    step.score = facts["score"]
    step.error = facts["error"]
    step.outcome = facts.get("outcome")
    step.text = result.content
    step.notes = split_notes(result.content)[0]
    if isinstance(facts.get("config"), dict) and step.config is None:
        step.config = facts["config"]
    if step.tool == "clarify":
        text = result.content.strip()
        unanswered = facts.get("answered") is False or facts.get("ok") is False or not text or \
            text.lower().startswith(UNANSWERED_PREFIXES)
        step.answer = None if unanswered else result.content.strip()
        step.question = step.question or facts.get("question")


def turn_steps(turn: list[Message], index: int) -> list[Step]:
    """The steps of one turn (`index` is its 0-based position in the history)."""
    if not turn:
        return []
    head, rest = turn[0], turn[1:]
    number = index + 1
    if head.role != "assistant":
        return []
    if head.tool_calls:
        steps = []
        results = {m.tool_call_id: m for m in rest if m.role == "tool"}
        for call in head.tool_calls:
            args = call.arguments
            step = Step(number, call.name, arguments=args)
            if isinstance(args, dict):
                if isinstance(args.get("config"), dict):
                    step.config = args["config"]
                if call.name == "clarify" and isinstance(args.get("question"), str):
                    step.question = args["question"]
            result = results.get(call.id)
            if result is not None:
                _fill(step, result)
            steps.append(step)
        return steps
    proposal = _proposal(head)
    outputs = [m for m in rest if is_output(m)]
    if proposal is not None:
        step = Step(number, "proposal", arguments=proposal,
                    config=proposal.get("config") if isinstance(proposal.get("config"), dict) else None,
                    stop=bool(proposal.get("stop")))
    else:
        step = Step(number, "message", arguments=head.content[:200])
    if outputs:
        _fill(step, outputs[0])
    return [step]


def history_steps(turns: list[list[Message]]) -> list[Step]:
    return [step for index, turn in enumerate(turns) for step in turn_steps(turn, index)]


def direction_of(preamble: list[Message]) -> str:
    """maximize | minimize, from the task's machine-readable target line (default maximize)."""
    for message in preamble:
        found = _DIRECTION.search(message.content)
        if found:
            return found.group(1)
    return "maximize"


def better(a: float, b: float, direction: str) -> bool:
    return a < b if direction == "minimize" else a > b


def compact_json(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe_step(step: Step) -> str:
    """One line: the action and what came of it."""
    if step.tool == "proposal":
        action = f"proposed {compact_json(step.config if step.config is not None else step.arguments)}"
        if step.stop:
            action += " (stop)"
    elif step.tool == "message":
        action = f"said {compact_json(step.arguments, 80)}"
    elif step.tool == "clarify":
        action = f"asked {compact_json(step.question or step.arguments, 120)}"
    elif step.config is not None:
        action = f"{step.tool}(config={compact_json(step.config)})"
    elif isinstance(step.arguments, dict):
        shown = {k: v for k, v in step.arguments.items() if k != "content"}
        action = f"{step.tool}({compact_json(shown, 100)})"
    else:
        action = f"{step.tool}({compact_json(step.arguments or '', 100)})"
    if not step.answered:
        outcome = "no result"
    elif step.error is not None:
        outcome = f"ERROR {step.error[:160]}"
    elif step.tool == "clarify":
        outcome = f"answer: {compact_json(step.answer or '', 160)}" if step.answer else "no answer"
    elif step.score is not None:
        outcome = f"ok, score={step.score:.6g}"
    else:
        outcome = "ok" + (f": {compact_json(_first_line(step.text, 80))}" if step.text.strip() else "")
    return f"{action} -> {outcome}"


@dataclass
class TurnFacts:
    """Per-turn flags the packing policy values."""

    error: bool = False
    scores: list[float] = field(default_factory=list)
    clarification: bool = False


def turn_facts(steps: list[Step]) -> TurnFacts:
    facts = TurnFacts()
    for step in steps:
        facts.error |= step.failed
        if step.score is not None:
            facts.scores.append(step.score)
        facts.clarification |= step.tool == "clarify" and step.answer is not None
    return facts
