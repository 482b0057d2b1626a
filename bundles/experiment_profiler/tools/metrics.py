"""Quality metrics of model responses.

Per response:
  fact_coverage(text, facts)  fraction of the facts found in the text (case-insensitive, runs of
                              whitespace count as one space); 1.0 when there are no facts
  is_refusal(text)            True when the text contains one of REFUSAL_MARKERS (case-insensitive,
                              curly apostrophes read as straight ones)
  is_complete(stop_reason)    True when the response finished ("end_turn"), not cut off
Aggregates:
  mean(values)                arithmetic mean, 0.0 for no values
  rate(flags)                 fraction of True, 0.0 for no flags
  completion_rate(reasons)    rate of is_complete over stop reasons
  refusal_rate(texts)         rate of is_refusal over texts
  geometric_mean(values)      (v1 * ... * vn) ** (1/n), 0.0 if any value is 0 or there are none
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

REFUSAL_MARKERS = (
    "i can't help", "i cannot help", "i can't assist", "i cannot assist", "i can't provide",
    "i cannot provide", "i won't help", "i will not help", "i won't provide", "i'm not able to help",
    "i am not able to help", "i'm unable to help", "i am unable to help", "i must decline",
)
COMPLETE_STOP_REASONS = ("end_turn",)


def normalize(text: str) -> str:
    """Lower case, curly apostrophes straightened, whitespace runs collapsed to one space."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return re.sub(r"\s+", " ", text).strip().lower()


def fact_coverage(text: str, facts: Sequence[str]) -> float:
    if not facts:
        return 1.0
    haystack = normalize(text)
    return sum(1 for fact in facts if normalize(fact) in haystack) / len(facts)


def is_refusal(text: str) -> bool:
    haystack = normalize(text)
    return any(marker in haystack for marker in REFUSAL_MARKERS)


def is_complete(stop_reason: str | None) -> bool:
    return stop_reason in COMPLETE_STOP_REASONS


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def rate(flags: Iterable[bool]) -> float:
    return mean(1.0 if flag else 0.0 for flag in flags)


def completion_rate(stop_reasons: Iterable[str | None]) -> float:
    return rate(is_complete(reason) for reason in stop_reasons)


def refusal_rate(texts: Iterable[str]) -> float:
    return rate(is_refusal(text) for text in texts)


def geometric_mean(values: Iterable[float]) -> float:
    values = list(values)
    if not values:
        return 0.0
    if any(v < 0 for v in values):
        raise ValueError(f"geometric mean of negative values: {values}")
    if any(v == 0 for v in values):
        return 0.0
    return math.exp(sum(math.log(v) for v in values) / len(values))
