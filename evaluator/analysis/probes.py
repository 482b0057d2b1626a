"""Probe recall as a statistic: pooled per arm (summary.json, compare.json) and paired between
policies by seed (compare.json), with the same interval estimates and tests the score uses.

Pooled recall is correct / answered over every answered probe of the arm's episodes (Wilson
interval); the paired comparison is on each episode's own recall (its `overall`), so an episode
with many answered probes does not outweigh its pair.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..episode.probe_recall import (BUCKETS, Tally, episode_probe_recall, is_answered, is_correct,
                                    probe_records, record_bucket)
from . import stats


def has_probes(result: dict[str, Any]) -> bool:
    """Whether an episode carries probe records (or, lacking them, a stored probe_recall object)."""
    return bool(probe_records(result)) or isinstance(result.get("probe_recall"), dict)


def episode_recall(result: dict[str, Any]) -> float | None:
    """One episode's probe recall (None: no probes, or none answered)."""
    recall = episode_probe_recall(result)
    overall = recall.get("overall") if recall else None
    return float(overall) if isinstance(overall, (int, float)) and not isinstance(overall, bool) else None


def _tally_record(tally: Tally) -> dict[str, Any]:
    return {"answered": tally.answered, "correct": tally.correct,
            "recall": stats.wilson_interval(tally.correct, tally.answered).as_record()}


def _pooled(results: list[dict[str, Any]]) -> tuple[Tally, Tally, dict[str, Tally], int]:
    """All answered probes of `results`: overall, decisive, by distance; and the not_planted count."""
    total, decisive, buckets, not_planted = Tally(), Tally(), {name: Tally() for name in BUCKETS}, 0
    for result in results:
        records = probe_records(result)
        if not records:  # only a stored per-episode object: its counts, no decisive or distance split
            stored = episode_probe_recall(result) or {}
            total.answered += int(stored.get("answered") or 0)
            total.correct += int(stored.get("correct") or 0)
            not_planted += int(stored.get("not_planted") or 0)
            continue
        for record in records:
            not_planted += record.get("status") == "not_planted"
            if not is_answered(record):
                continue
            total.add(is_correct(record))
            if record.get("decisive") is True:
                decisive.add(is_correct(record))
            bucket = record_bucket(record)
            if bucket is not None:
                buckets[bucket].add(is_correct(record))
    return total, decisive, buckets, not_planted


def arm_probe_recall(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The `probe_recall` block of an arm; None when none of its episodes had probes."""
    probed = [r for r in results if has_probes(r)]
    if not probed:
        return None
    total, decisive, buckets, not_planted = _pooled(probed)
    return {"episodes": len(probed), "answered": total.answered, "correct": total.correct,
            "not_planted": not_planted,
            "overall": stats.wilson_interval(total.correct, total.answered).as_record(),
            "by_distance": {name: _tally_record(t) for name, t in buckets.items() if t.answered},
            "decisive": _tally_record(decisive),
            "episode_mean": stats.bootstrap_mean([episode_recall(r) for r in probed]).as_record()}


def summary_entry(results: list[dict[str, Any]]) -> dict[str, Any]:
    """What summary.json's arm block gains: {"probe_recall": ...} when the arm had probes, else nothing."""
    block = arm_probe_recall(results)
    return {} if block is None else {"probe_recall": block}


@dataclass
class ProbeComparison:
    """Per-episode probe recall of policy a against b on the seeds where both answered probes."""

    seeds: list[int]
    mean_a: float | None
    mean_b: float | None
    difference: stats.Interval  # mean of recall a - recall b, paired bootstrap
    p: float | None  # sign-flip permutation test
    p_adjusted: float | None = None  # Holm across the document's probe-recall comparisons

    def better(self, policy_a: str, policy_b: str) -> str | None:
        diff = self.difference.estimate
        if diff is None or diff == 0:
            return None
        return policy_a if diff > 0 else policy_b  # more recall is better, whatever the score's direction

    @property
    def significant(self) -> bool:
        return self.p_adjusted is not None and self.p_adjusted < stats.ALPHA

    def as_record(self, policy_a: str, policy_b: str) -> dict[str, Any]:
        return {"seeds": self.seeds, "pairs": len(self.seeds), "mean_a": self.mean_a, "mean_b": self.mean_b,
                "difference": self.difference.as_record(), "p": self.p, "p_adjusted": self.p_adjusted,
                "better": self.better(policy_a, policy_b), "significant": self.significant}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def compare_probe_recall(a_by_seed: dict[int, dict[str, Any]],
                         b_by_seed: dict[int, dict[str, Any]]) -> ProbeComparison | None:
    """The paired probe-recall comparison of two arms (one result per seed each); None when
    neither arm had probes."""
    if not any(has_probes(r) for r in (*a_by_seed.values(), *b_by_seed.values())):
        return None
    recall_a = {s: episode_recall(r) for s, r in a_by_seed.items()}
    recall_b = {s: episode_recall(r) for s, r in b_by_seed.items()}
    seeds = sorted(s for s in set(recall_a) & set(recall_b) if recall_a[s] is not None and recall_b[s] is not None)
    a, b = [recall_a[s] for s in seeds], [recall_b[s] for s in seeds]
    return ProbeComparison(seeds=seeds, mean_a=_mean(a), mean_b=_mean(b),
                           difference=stats.paired_bootstrap_difference(a, b), p=stats.sign_flip_p_value(a, b))


def holm_adjust_probes(comparisons: list[ProbeComparison | None]) -> None:
    """Holm-adjust the probe-recall p-values across the family, in place (None entries skipped)."""
    present = [c for c in comparisons if c is not None]
    for comparison, p in zip(present, stats.holm_adjust([c.p for c in present])):
        comparison.p_adjusted = p
