"""Probe recall of one episode, from its probe records (spec: "Probe records in result.json").

Only records with status "answered" count towards recall: a probe whose planting call never
happened ("not_planted") is counted apart and is never a miss; one never asked ("not_asked")
does not count at all. An answered record is correct only when `correct` is true (a garbled or
missing answer is a miss). Distances (asked_call - planted_call) are grouped in powers of two.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

BUCKETS: tuple[str, ...] = ("1", "2-3", "4-7", "8-15", "16-31", "32+")
STATUSES: tuple[str, ...] = ("answered", "not_planted", "not_asked")
ANSWERED, NOT_PLANTED = "answered", "not_planted"


def distance_bucket(d: int) -> str:
    """The bucket of a plant-to-ask distance in model calls: 1, 2-3, 4-7, 8-15, 16-31, 32+."""
    if isinstance(d, bool) or not isinstance(d, int):
        raise TypeError(f"a probe distance is an integer number of calls, not {d!r}")
    if d <= 0:
        raise ValueError(f"a probe distance is at least 1 call (asked after it was planted), not {d}")
    return BUCKETS[min(d.bit_length(), len(BUCKETS)) - 1]


@dataclass
class Tally:
    """Answered and correct probes of some group of records."""

    answered: int = 0
    correct: int = 0

    def add(self, correct: bool) -> None:
        self.answered += 1
        self.correct += int(correct)

    @property
    def recall(self) -> float | None:
        return self.correct / self.answered if self.answered else None


def is_answered(record: dict[str, Any]) -> bool:
    return isinstance(record, dict) and record.get("status") == ANSWERED


def is_correct(record: dict[str, Any]) -> bool:
    return record.get("correct") is True


def record_bucket(record: dict[str, Any]) -> str | None:
    """The distance bucket of an answered record, or None when its distance is missing or not >= 1."""
    distance = record.get("distance")
    try:
        return distance_bucket(distance)
    except (TypeError, ValueError):
        return None


def probe_recall(records: Iterable[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The per-episode `probe_recall` object from the episode's probe records; None without records.

    `overall` is None when no record was answered (e.g. every plant came after the episode ended);
    `by_distance` lists only buckets with answered probes."""
    records = [r for r in (records or []) if isinstance(r, dict)]
    if not records:
        return None
    total, buckets = Tally(), {name: Tally() for name in BUCKETS}
    for record in records:
        if not is_answered(record):
            continue
        total.add(is_correct(record))
        bucket = record_bucket(record)
        if bucket is not None:
            buckets[bucket].add(is_correct(record))
    return {"overall": total.recall, "answered": total.answered, "correct": total.correct,
            "not_planted": sum(1 for r in records if r.get("status") == NOT_PLANTED),
            "by_distance": {name: tally.recall for name, tally in buckets.items() if tally.answered}}


def probe_records(result: dict[str, Any]) -> list[dict[str, Any]]:
    """A result's probe records (empty for results written without probes)."""
    records = result.get("probes")
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def episode_probe_recall(result: dict[str, Any]) -> dict[str, Any] | None:
    """A result's probe recall: recomputed from its records when it has them (they are the source),
    else the stored `probe_recall` object (None for results without probes)."""
    records = probe_records(result)
    if records:
        return probe_recall(records)
    stored = result.get("probe_recall")
    return stored if isinstance(stored, dict) else None
