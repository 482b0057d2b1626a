"""Rolling summaries: the deterministic extractive summarizer and the per-episode cache.

A summarizer is any callable list[Message] -> SummarizerResult (the evaluator passes one backed by
the episode's model, billed apart). Its input is the previous summary (a message of kind
"summary", when there is one) followed by the turns that newly fell out of the window; its output
replaces the previous summary.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .base import (KIND_SUMMARY, Message, PolicyInput, SummarizerResult, TokenCounter, count_tokens, group_turns,
                   messages_tokens)
from .facts import better, describe_step, direction_of, turn_steps

SUMMARY_HEADER = "Experiment log (one line per turn: action -> outcome):"
_EARLIER = re.compile(r"^\(and (\d+) earlier turns not listed\)$")
NOTE_PREFIX = "- note: "  # a fact or constraint an observation stated: every summary keeps it
_BEST = re.compile(r"^Best so far: (\S+) at (.*)$")


class ExtractiveSummarizer:
    """One line per turn: the action and its outcome / score / error, plus a running "best so
    far" line and the facts and constraints stated so far (notes). Deterministic and offline; the tokens it "reads" and "writes" are still counted
    (with the request's counter) so summary billing shows up in offline runs too. Keeps the newest
    `max_lines` turn lines (older ones are counted, and the best line survives them)."""

    def __init__(self, counter: TokenCounter = count_tokens, max_lines: int = 50, direction: str = "maximize"):
        self.counter = counter
        self.max_lines = max_lines
        self.direction = direction

    def __call__(self, messages: list[Message]) -> SummarizerResult:
        lines: list[str] = []
        earlier = 0
        best: tuple[float, str] | None = None
        notes: list[str] = []
        rest = messages
        if messages and messages[0].kind == KIND_SUMMARY:
            for line in messages[0].content.splitlines():
                if line.startswith(NOTE_PREFIX):
                    notes.append(line[len(NOTE_PREFIX):])
                elif line.startswith("- turn "):
                    lines.append(line)
                elif (found := _EARLIER.match(line)) is not None:
                    earlier = int(found.group(1))
                elif (found := _BEST.match(line)) is not None:
                    best = (float(found.group(1)), found.group(2))
            rest = messages[1:]
        for turn in group_turns(rest):
            number = turn[0].turn if turn[0].turn is not None else len(lines) + earlier + 1
            steps = turn_steps(turn, number - 1)
            text = "; ".join(describe_step(step) for step in steps) or f"{turn[0].role}: {turn[0].content[:120]}"
            lines.append(f"- turn {number}: {text}")
            for step in steps:
                notes += [note for note in step.notes if note not in notes]
                if step.score is not None and (best is None or better(step.score, best[0], self.direction)):
                    best = (step.score, f"turn {number}: {describe_step(step)}")
        if len(lines) > self.max_lines:
            earlier += len(lines) - self.max_lines
            lines = lines[-self.max_lines:]
        header = [SUMMARY_HEADER]
        if best is not None:
            header.append(f"Best so far: {best[0]!r} at {best[1]}")
        header += [f"{NOTE_PREFIX}{note}" for note in notes]
        if earlier:
            header.append(f"(and {earlier} earlier turns not listed)")
        text = "\n".join([*header, *lines])
        return SummarizerResult(text, prompt_tokens=messages_tokens(messages, self.counter),
                                completion_tokens=self.counter(text))


def _digest(turns: list[list[Message]]) -> str:
    h = hashlib.sha1()
    for turn in turns:
        for m in turn:
            h.update(f"{m.role}\x00{m.tool_call_id}\x00{m.content}\x00".encode("utf-8", "replace"))
            for call in m.tool_calls:
                h.update(f"{call.id}\x00{call.name}\x00{call.arguments}\x00".encode("utf-8", "replace"))
    return h.hexdigest()


@dataclass
class RollingSummary:
    """The summary an episode's policy carries between calls: its text and how many turns (a
    prefix of the history) it covers. Refreshed only when at least `every` more turns are due;
    reset if the history it summarised is no longer a prefix of the one given."""

    text: str | None = None
    covered: int = 0
    digest: str = ""

    def update(self, turns: list[list[Message]], due: int, every: int, request: PolicyInput) -> SummarizerResult | None:
        """Bring the summary up to `due` turns if at least `every` are pending; returns the call made."""
        if self.covered and (self.covered > len(turns) or _digest(turns[:self.covered]) != self.digest):
            self.text, self.covered, self.digest = None, 0, ""
        if due - self.covered < max(every, 1):
            return None
        messages = [*([self.message(self.covered)] if self.text is not None else []),
                    *[m for turn in turns[self.covered:due] for m in turn]]
        summarizer = request.summarizer or \
            ExtractiveSummarizer(request.counter, direction=direction_of(request.preamble))
        result = summarizer(messages)
        self.text, self.covered, self.digest = result.text, due, _digest(turns[:due])
        return result

    def message(self, covered: int | None = None) -> Message:
        covered = self.covered if covered is None else covered
        span = "turn 1" if covered == 1 else f"turns 1-{covered}"
        head = (f"[ctxeval: {span} of this episode are summarised here by the context policy; "
                "the turns themselves are omitted]")
        return Message("user", f"{head}\n{self.text or ''}", kind=KIND_SUMMARY, meta={"truncate": "both"})
