"""The spaces of a bundle environment: text in, text out.

An LLM agent's action is text (a JSON tool call) and what it observes is text, of any characters.
Gymnasium's `spaces.Text` accepts only the characters of its charset; `AnyText` is a Text space
that contains every string within its length bounds (it samples from printable ASCII), so the
vector and batching helpers Gymnasium registers for Text apply to it unchanged. In the shared
memory of an AsyncVectorEnv (one int32 per character, as for Text) it is stored as code points,
not as indices into a charset.
"""
from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import read_from_shared_memory, write_to_shared_memory

ACTION_MAX_CHARS = 1 << 20  # a write_file action may carry a whole file
TEXT_MAX_CHARS = 1 << 16  # the task statement, an observation (tool outputs are cut at 6000 characters)
CONTEXT_MAX_CHARS = 1 << 21  # a policy-built context as JSON (a 128k-token context is ~0.5M characters)
SAMPLE_CHARSET = string.printable
PAD = -1  # shared memory: the code point of no character


class AnyText(spaces.Text):
    """A Text space holding any string of `min_length`..`max_length` characters."""

    def __init__(self, max_length: int, *, min_length: int = 0, seed: Any = None):
        super().__init__(max_length, min_length=min_length, charset=SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"AnyText({self.min_length}, {self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, AnyText) and (self.min_length, self.max_length) == (other.min_length, other.max_length)


def action_space() -> AnyText:
    """An action: a JSON object, `{"name": TOOL, "arguments": {...}}` (see rl/actions.py)."""
    return AnyText(ACTION_MAX_CHARS, min_length=0)


def observation_space(max_steps: int, with_context: bool) -> spaces.Dict:
    """`task` (the statement), `text` (the last action's answer), `step` (steps taken) and, when the
    environment has a context policy, `context` (JSON: the messages that policy would send a model)."""
    fields: dict[str, spaces.Space] = {"task": AnyText(TEXT_MAX_CHARS), "text": AnyText(TEXT_MAX_CHARS),
                                       "step": spaces.Discrete(max_steps + 1)}
    if with_context:
        fields["context"] = AnyText(CONTEXT_MAX_CHARS)
    return spaces.Dict(fields)


@write_to_shared_memory.register(AnyText)
def _write_any_text(space: AnyText, index: int, value: str, shared_memory: Any) -> None:
    size = space.max_length
    destination = np.frombuffer(shared_memory.get_obj(), dtype=np.int32)[index * size:(index + 1) * size]
    codes = np.fromiter((ord(c) for c in value), dtype=np.int32, count=len(value))
    destination[:len(codes)] = codes
    destination[len(codes):] = PAD


class SharedTexts(Sequence):
    """The texts of one AnyText field in an AsyncVectorEnv's shared memory, decoded when read.
    Gymnasium reads a space's shared memory once, when the vector environment starts, and relies
    on getting views of it (arrays); a tuple of strings would stay what it was then. A copy of
    this sequence (the vector environment returns one, `copy=True`) is a plain tuple."""

    def __init__(self, shared_memory: Any, n: int, max_length: int):
        self.shared_memory, self.n, self.max_length = shared_memory, n, max_length

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self.n)))
        row = np.frombuffer(self.shared_memory.get_obj(), dtype=np.int32).reshape((self.n, self.max_length))[index]
        return "".join(map(chr, row[row != PAD]))

    def __deepcopy__(self, memo: dict) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other: Any) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return f"SharedTexts({tuple(self)!r})"


@read_from_shared_memory.register(AnyText)
def _read_any_text(space: AnyText, shared_memory: Any, n: int = 1) -> SharedTexts:
    return SharedTexts(shared_memory, n, space.max_length)
