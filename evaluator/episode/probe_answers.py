"""Is a probe's answer right? Text answers are compared normalised (case, punctuation and spacing
ignored; the expected words must appear in order as whole words); numeric answers by the first
number in the reply, within the probe's tolerance. A refusal or a garbled reply is simply wrong."""
from __future__ import annotations

import math
import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..bundles.manifest import ProbeSpec

NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w.+-]+", " ", text)
    return " ".join(word.strip(".") for word in text.split() if word.strip("."))


def first_number(text: str) -> float | None:
    match = NUMBER.search(text.replace(",", ""))
    if match is None:
        return None
    value = float(match.group())
    return value if math.isfinite(value) else None


def grade_answer(probe: "ProbeSpec", answer: str) -> bool:
    if probe.answer_text is not None:
        expected = normalise(probe.answer_text)
        return bool(expected) and f" {expected} " in f" {normalise(answer)} "
    if probe.answer_number is None:
        return False
    value = first_number(answer)
    return value is not None and abs(value - probe.answer_number) <= probe.tolerance
