"""Interval estimates and paired tests for comparing episodes (scipy does the arithmetic).

Every function takes plain sequences and returns plain floats (or None where the sample is too
small to say anything), so results stay JSON-serialisable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

CONFIDENCE = 0.95
ALPHA = 0.05  # an adjusted p-value below this is called significant
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
EXACT_PERMUTATION_MAX_PAIRS = 16  # 2**16 sign flips: enumerate them all; beyond, sample
CORRECTION = "holm-bonferroni"


@dataclass(frozen=True)
class Interval:
    estimate: float | None
    low: float | None
    high: float | None

    def as_record(self) -> dict[str, float | None]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def _clean(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The Wilson score interval for a success rate (good at n of 3 or 30 alike)."""
    if n == 0:
        return Interval(None, None, None)
    from scipy.stats import binomtest
    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(successes / n, float(ci.low), float(ci.high))


def bootstrap_mean(values: Sequence[float | None], confidence: float = CONFIDENCE,
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Interval:
    """Mean with a percentile bootstrap interval; a constant sample gets a zero-width interval."""
    data = _clean(values)
    if data.size == 0:
        return Interval(None, None, None)
    mean = float(data.mean())
    if data.size < 2:
        return Interval(mean, None, None)
    if np.all(data == data[0]):
        return Interval(mean, mean, mean)
    from scipy.stats import bootstrap
    result = bootstrap((data,), np.mean, confidence_level=confidence, n_resamples=resamples,
                       method="percentile", random_state=np.random.default_rng(seed))
    return Interval(mean, float(result.confidence_interval.low), float(result.confidence_interval.high))


def paired_bootstrap_difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE,
                                resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Interval:
    """Mean of a - b over pairs (same seed), with a paired bootstrap interval."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    return bootstrap_mean([x - y for x, y in zip(a, b)], confidence, resamples, seed)


def sign_flip_p_value(a: Sequence[float], b: Sequence[float], seed: int = BOOTSTRAP_SEED) -> float | None:
    """Two-sided paired permutation test of mean(a - b) = 0: exact (all sign flips) up to
    EXACT_PERMUTATION_MAX_PAIRS pairs, Monte Carlo beyond."""
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diffs.size == 0:
        return None
    if np.all(diffs == 0) or diffs.size == 1:  # one pair: its two sign flips give p = 1 exactly
        return 1.0
    from scipy.stats import permutation_test
    resamples = 2 ** diffs.size if diffs.size <= EXACT_PERMUTATION_MAX_PAIRS else BOOTSTRAP_RESAMPLES
    result = permutation_test((np.asarray(a, dtype=float), np.asarray(b, dtype=float)),
                              lambda x, y: np.mean(x - y), permutation_type="samples",
                              n_resamples=resamples, alternative="two-sided",
                              random_state=np.random.default_rng(seed))
    return float(min(1.0, result.pvalue))


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> float | None:
    """Exact McNemar test on paired successes: a binomial test on the discordant pairs."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    if only_a + only_b == 0:
        return 1.0 if a else None
    from scipy.stats import binomtest
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni step-down adjusted p-values (family-wise error control), order kept."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(indexed)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
