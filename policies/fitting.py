"""Shared by every policy: make a context fit its token budget without breaking its invariants.

`Layout` + `fit_layout`, which every policy uses: a layout says which turns are shown (possibly
transformed: masked, cleared), which leading messages stand in for a prefix of the history (a
summary, a state record) and how much each shown turn is worth. Rendering puts a placeholder in
every gap; fitting drops the least valuable turns first, then truncates, so the result never
exceeds the budget and a tool call is never separated from its result.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .base import (KIND_OBSERVATION, KIND_PLACEHOLDER, STATE_DROPPED, STATE_KEPT, STATE_MASKED, STATE_SUMMARISED,
                   Message, TokenCounter, group_turns, message_tokens, messages_tokens)
from .marks import RESULT_MARK

PLACEHOLDER_PREFIX = "[ctxeval:"
MIN_TRUNCATED_TOKENS = 24  # below this a truncated output is not worth keeping


def placeholder(dropped_turns: int, what: str = "earlier turns") -> Message:
    return Message("user", f"[ctxeval: {dropped_turns} {what} omitted by the context policy]",
                   kind=KIND_PLACEHOLDER)


# -- turns and outputs ---------------------------------------------------------------------------

def history_turns(history: list[Message]) -> list[list[Message]]:
    """`group_turns`, made safe to render: a tool message that precedes every assistant message
    (an orphan result, which a provider would reject) is replaced by a placeholder note."""
    turns = group_turns(history)
    if turns and turns[0] and turns[0][0].role != "assistant":
        turns[0] = [Message("user", "[ctxeval: a tool result without its call was omitted by the context policy]",
                            kind=KIND_PLACEHOLDER) if m.role == "tool" else m for m in turns[0]]
    return turns


def is_output(message: Message) -> bool:
    """A tool result (agentic) or a reported result / nudge answering an action (controller)."""
    return message.role == "tool" or (message.role == "user" and message.kind == KIND_OBSERVATION)


def output_label(message: Message) -> str:
    tool = message.name or message.meta.get("tool")
    if tool:
        return f"tool result of {tool}"
    return "result of the proposal" if message.content.startswith(RESULT_MARK) else "observation"


def replace_output(message: Message, verb: str, counter: TokenCounter) -> Message:
    """The same message (role, tool_call_id, name, kind, turn: pairing stays intact) with its
    content replaced by a placeholder; structured facts (meta) go too, as the content did.
    An output no longer than its placeholder is left as it is: hiding it would cost tokens."""
    tokens = counter(message.content)
    text = f"[ctxeval: {output_label(message)} {verb} by the context policy: ~{tokens} tokens]"
    if counter(text) >= tokens:
        return message
    replaced = copy.copy(message)
    replaced.content = text
    replaced.meta = {"replaced": verb, "original_tokens": tokens}
    if message.meta.get("tool"):
        replaced.meta["tool"] = message.meta["tool"]
    return replaced


def stand_in_pays(stand_in: list[Message], replaced: list[list[Message]], counter: TokenCounter) -> bool:
    """Whether messages standing in for some turns (a summary, a state record) are smaller than
    those turns: a policy never sends more than the history it condenses."""
    return messages_tokens(stand_in, counter) < sum(messages_tokens(t, counter) for t in replaced)


def truncate_text(text: str, max_tokens: int, counter: TokenCounter, keep: str = "both") -> str | None:
    """The longest cut of `text` (keeping its head, its tail or both) that, with a marker saying
    what was cut, counts at most `max_tokens`; None when not even the marker fits."""
    if counter(text) <= max_tokens:
        return text
    marker = f"\n[ctxeval: output truncated by the context policy; ~{counter(text)} tokens originally]\n"

    def cut(chars: int) -> str:
        if keep == "head":
            return text[:chars] + marker
        if keep == "tail":
            return marker + text[len(text) - chars:] if chars else marker
        head = (chars + 1) // 2
        tail = chars - head
        return text[:head] + marker + (text[len(text) - tail:] if tail else "")

    if counter(cut(0)) > max_tokens:
        return None
    lo, hi = 0, len(text)
    while lo < hi:  # the largest `chars` whose cut fits
        mid = (lo + hi + 1) // 2
        if counter(cut(mid)) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return cut(lo)


# -- layouts -----------------------------------------------------------------------------------------

@dataclass
class Layout:
    """What a policy wants to show, before the budget is applied.

    preamble: kept whole and first. turns: the whole history, grouped. shown: turn index -> the
    messages to show for it (the turn itself, or a transformed copy with the same pairing).
    lead: messages right after the preamble that stand in for turns [0, covered_upto) (a summary,
    a state record). priority: turn index -> value; the least valuable turn is dropped first
    (default: the oldest)."""

    preamble: list[Message]
    turns: list[list[Message]]
    shown: dict[int, list[Message]]
    counter: TokenCounter
    lead: list[Message] = field(default_factory=list)
    covered_upto: int = 0
    priority: dict[int, float] = field(default_factory=dict)
    compact: bool = False  # one short placeholder for all gaps
    markers: bool = True  # placeholders at all (off only when not even a short one fits)
    _turn_tokens: dict[int, int] = field(default_factory=dict, repr=False)
    _placeholder_tokens: dict[tuple[int, int], int] = field(default_factory=dict, repr=False)
    _preamble_tokens: int | None = field(default=None, repr=False)

    # -- rendering
    def _start(self) -> int:
        return self.covered_upto if self.lead else 0

    def gaps(self) -> list[tuple[int, int]]:
        """Runs of turns (first, last) neither shown nor represented by the lead."""
        runs: list[tuple[int, int]] = []
        previous = self._start() - 1
        for index in [*sorted(i for i in self.shown if i >= self._start()), len(self.turns)]:
            if index > previous + 1:
                runs.append((previous + 1, index - 1))
            previous = index
        return runs

    @staticmethod
    def gap_message(first: int, last: int) -> Message:
        count = last - first + 1
        span = f"turn {first + 1}" if count == 1 else f"turns {first + 1}-{last + 1}"
        what = "1 turn" if count == 1 else f"{count} turns"
        return Message("user", f"[ctxeval: {what} ({span}) omitted by the context policy]",
                       kind=KIND_PLACEHOLDER)

    def compact_message(self) -> Message:
        missing = sum(last - first + 1 for first, last in self.gaps())
        return Message("user", f"[ctxeval: {missing} turns omitted]", kind=KIND_PLACEHOLDER)

    def body(self) -> list[Message]:
        out = list(self.lead)
        gaps = self.gaps() if self.markers else []
        if self.compact and gaps:
            out.append(self.compact_message())
            gaps = []
        starts = {first: last for first, last in gaps}
        for index in range(len(self.turns)):
            if index in starts:
                out.append(self.gap_message(index, starts[index]))
            if index in self.shown:
                out.extend(self.shown[index])
        return out

    def messages(self) -> list[Message]:
        return [*self.preamble, *self.body()]

    def fill_cheap_gaps(self) -> None:
        """Show the turns of every gap that cost no more than its placeholder (a placeholder must
        never make a context bigger than the history it stands for)."""
        for first, last in self.gaps():
            if sum(messages_tokens(self.turns[i], self.counter) for i in range(first, last + 1)) \
                    <= self.gap_tokens(first, last):
                for index in range(first, last + 1):
                    self.set_turn(index, self.turns[index])

    # -- accounting (cached per turn and per gap; `set_turn` invalidates)
    def set_turn(self, index: int, messages: list[Message]) -> None:
        self.shown[index] = messages
        self._turn_tokens.pop(index, None)

    def drop_turn(self, index: int) -> None:
        self.shown.pop(index, None)
        self._turn_tokens.pop(index, None)

    def turn_tokens(self, index: int) -> int:
        if index not in self._turn_tokens:
            self._turn_tokens[index] = messages_tokens(self.shown[index], self.counter)
        return self._turn_tokens[index]

    def tokens(self) -> int:
        if self._preamble_tokens is None:
            self._preamble_tokens = messages_tokens(self.preamble, self.counter)
        total = self._preamble_tokens + messages_tokens(self.lead, self.counter)
        total += sum(self.turn_tokens(i) for i in self.shown)
        gaps = self.gaps() if self.markers else []
        if self.compact and gaps:
            return total + message_tokens(self.compact_message(), self.counter)
        return total + sum(self.gap_tokens(*gap) for gap in gaps)

    def gap_tokens(self, first: int, last: int) -> int:
        """Tokens of the placeholder for turns first..last."""
        if (first, last) not in self._placeholder_tokens:
            self._placeholder_tokens[first, last] = message_tokens(self.gap_message(first, last), self.counter)
        return self._placeholder_tokens[first, last]

    def value(self, index: int) -> float:
        return self.priority.get(index, float(index))

    @property
    def dropped_turns(self) -> int:
        return len(self.turns) - len(self.shown)

    # -- the context map
    def turn_states(self) -> str:
        """One character per history turn, oldest first: K shown as it happened, M shown but
        transformed (masked, cleared, truncated), S represented by the lead (a summary, a state
        record), D dropped. A turn `history_turns` had to repair (an orphan result) is never K."""
        covered = self.covered_upto if self.lead else 0
        states = []
        for index, turn in enumerate(self.turns):
            shown = self.shown.get(index)
            if shown is not None:
                states.append(STATE_KEPT if _unchanged(shown, turn) else STATE_MASKED)
            else:
                states.append(STATE_SUMMARISED if index < covered else STATE_DROPPED)
        return "".join(states)


def _unchanged(shown: list[Message], turn: list[Message]) -> bool:
    """Whether the messages shown for a turn are the turn itself (the same messages, same contents)."""
    return len(shown) == len(turn) and all(a is b or a == b for a, b in zip(shown, turn)) \
        and not any(m.kind == KIND_PLACEHOLDER for m in turn)


def effective_budget(*budgets: int | None) -> int | None:
    """The tightest of several budgets; None means unlimited."""
    given = [b for b in budgets if b is not None]
    return min(given) if given else None


def _shrink_lead(layout: Layout, budget: int, cap: int | None = None) -> None:
    """Truncate the largest lead message so the whole context fits (or, given `cap`, so the lead
    takes at most `cap` tokens), if a useful cut exists."""
    if not layout.lead:
        return
    index = max(range(len(layout.lead)), key=lambda i: message_tokens(layout.lead[i], layout.counter))
    message = layout.lead[index]
    room = budget - (layout.tokens() - message_tokens(message, layout.counter))
    if cap is not None:
        room = min(room, cap - (messages_tokens(layout.lead, layout.counter) - message_tokens(message, layout.counter)))
    cut = truncate_text(message.content, room - 4, layout.counter, keep=message.meta.get("truncate", "both"))
    if cut is not None and layout.counter(cut) >= MIN_TRUNCATED_TOKENS:
        shrunk = copy.copy(message)
        shrunk.content = cut
        layout.lead = [*layout.lead[:index], shrunk, *layout.lead[index + 1:]]


def _shrink_turn(layout: Layout, index: int, budget: int) -> None:
    """Truncate the contents of the messages of one turn, largest first, until the context fits.
    Tool calls and the pairing are untouched; only text is cut (with a marker)."""
    messages = list(layout.shown[index])
    order = sorted(range(len(messages)), key=lambda i: -layout.counter(messages[i].content))
    for position in order:
        excess = layout.tokens() - budget
        if excess <= 0:
            return
        message = messages[position]
        size = layout.counter(message.content)
        if size <= MIN_TRUNCATED_TOKENS:
            continue
        cut = truncate_text(message.content, max(size - excess, MIN_TRUNCATED_TOKENS), layout.counter)
        if cut is None or cut == message.content:
            continue
        shrunk = copy.copy(message)
        shrunk.content = cut
        shrunk.meta = {**message.meta, "truncated_from_tokens": size}
        messages[position] = shrunk
        layout.set_turn(index, list(messages))


def fit_layout(layout: Layout, budget: int | None) -> Layout:
    """Make `layout` fit `budget` (in place), after showing the turns of gaps cheaper than their
    placeholder. Order of sacrifice: the lead's excess over what the
    turns leave it (it keeps at least half the room after the preamble); the least valuable shown
    turns (all but the most valuable one); a further cut of the lead; a cut of the remaining
    turn's contents; the lead; that turn; the placeholders' detail."""
    layout.fill_cheap_gaps()
    if budget is None or layout.tokens() <= budget:
        return layout
    if layout.lead and layout.shown:  # the lead may take what the turns leave, and at least half the room
        lead_tokens = messages_tokens(layout.lead, layout.counter)
        half = (budget - messages_tokens(layout.preamble, layout.counter)) // 2
        cap = max(half, budget - (layout.tokens() - lead_tokens))
        if lead_tokens > cap:
            _shrink_lead(layout, budget, cap=cap)
    fixed = messages_tokens(layout.preamble, layout.counter) + messages_tokens(layout.lead, layout.counter)
    by_value = sorted(layout.shown, key=lambda i: (layout.value(i), i))
    # bulk pass (ignores placeholders): keep the most valuable turns whose sum fits at all
    room, keep = budget - fixed, set()
    for index in reversed(by_value):
        if layout.turn_tokens(index) <= room:
            keep.add(index)
            room -= layout.turn_tokens(index)
        else:
            break  # keep a prefix of the value order: the order of sacrifice stays the value order
    for index in by_value[:-1]:
        if index not in keep:
            layout.drop_turn(index)
    # fine pass: placeholders count too
    for index in [i for i in by_value[:-1] if i in layout.shown]:
        if layout.tokens() <= budget:
            return layout
        layout.drop_turn(index)
    if layout.tokens() > budget:
        _shrink_lead(layout, budget)
    if layout.tokens() > budget and layout.shown:
        _shrink_turn(layout, next(iter(layout.shown)), budget)
    if layout.tokens() > budget and layout.lead:
        layout.lead, layout.covered_upto = [], 0
        if layout.shown:
            _shrink_turn(layout, next(iter(layout.shown)), budget)
    if layout.tokens() > budget:
        for index in list(layout.shown):
            layout.drop_turn(index)
    if layout.tokens() > budget:
        layout.compact = True
    if layout.tokens() > budget:
        layout.markers = False
    return layout
