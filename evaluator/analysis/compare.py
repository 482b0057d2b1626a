"""Pool the results of one or more runs and compare context policies.

An arm is bundle × mode × model × policy. Policies are compared within one bundle × mode × model,
paired by seed: the seed fixes the data split and the agent's randomness, so pairing removes that
variance from the difference. Each test's p-values (sign-flip on score, McNemar on success) are
Holm-adjusted across the family of all comparisons in the document; so is the paired test of
per-episode probe recall, where the arms have probes (probes.py).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CtxevalError
from . import stats
from .loading import ArmKey, BundleTarget, RunResults, arm_key, bundle_targets, group_by_arm, total_tokens
from .probes import ProbeComparison, arm_probe_recall, compare_probe_recall, holm_adjust_probes

SCHEMA_VERSION = 1
ALPHA = stats.ALPHA


@dataclass
class ArmSummary:
    arm: ArmKey
    metric: str | None
    direction: str | None
    runs: list[str]
    seeds: list[int]
    n: int
    successes: int
    errors: int
    success_rate: stats.Interval
    score: stats.Interval
    total_tokens: stats.Interval
    cost_usd: stats.Interval
    llm_calls: float | None
    stop_reasons: dict[str, int]
    medals: dict[str, int]
    probe_recall: dict[str, Any] | None = None  # probes.arm_probe_recall; None: no episode had probes

    def as_record(self) -> dict[str, Any]:
        probes = {} if self.probe_recall is None else {"probe_recall": self.probe_recall}
        return {"arm": self.arm.as_record(), "label": self.arm.label, "metric": self.metric,
                "direction": self.direction, "runs": self.runs, "seeds": self.seeds, "n": self.n,
                "successes": self.successes, "errors": self.errors,
                "success_rate": self.success_rate.as_record(), "score": self.score.as_record(),
                "total_tokens": self.total_tokens.as_record(), "cost_usd": self.cost_usd.as_record(),
                "llm_calls": self.llm_calls, "stop_reasons": self.stop_reasons, "medals": self.medals, **probes}


@dataclass
class Comparison:
    """Policy a against policy b on the seeds both ran; differences are a − b."""

    bundle: str
    mode: str
    model: str
    policy_a: str
    policy_b: str
    direction: str | None
    seeds: list[int]
    only_a: list[int]
    only_b: list[int]
    score_pairs: int
    mean_score_a: float | None
    mean_score_b: float | None
    score_difference: stats.Interval
    score_p: float | None
    successes_a: int
    successes_b: int
    success_p: float | None
    score_p_adjusted: float | None = None
    success_p_adjusted: float | None = None
    probe_recall: ProbeComparison | None = None  # None: neither arm had probes

    @property
    def better(self) -> str | None:
        """The policy with the better paired mean score given the direction (None on a tie)."""
        diff = self.score_difference.estimate
        if diff is None or diff == 0 or self.direction is None:
            return None
        a_better = diff > 0 if self.direction == "maximize" else diff < 0
        return self.policy_a if a_better else self.policy_b

    @property
    def significant(self) -> bool:
        return self.score_p_adjusted is not None and self.score_p_adjusted < ALPHA

    def as_record(self) -> dict[str, Any]:
        probes = {} if self.probe_recall is None else \
            {"probe_recall": self.probe_recall.as_record(self.policy_a, self.policy_b)}
        return {"bundle": self.bundle, "mode": self.mode, "model": self.model,
                "policy_a": self.policy_a, "policy_b": self.policy_b, "direction": self.direction,
                "seeds": self.seeds, "only_a": self.only_a, "only_b": self.only_b, "pairs": len(self.seeds),
                "score_pairs": self.score_pairs, "mean_score_a": self.mean_score_a,
                "mean_score_b": self.mean_score_b, "score_difference": self.score_difference.as_record(),
                "score_p": self.score_p, "score_p_adjusted": self.score_p_adjusted,
                "successes_a": self.successes_a, "successes_b": self.successes_b,
                "success_p": self.success_p, "success_p_adjusted": self.success_p_adjusted,
                "better": self.better, "significant": self.significant, **probes}


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _score(result: dict[str, Any]) -> float | None:
    score = result.get("score")
    return None if score is None or (isinstance(score, float) and math.isnan(score)) else float(score)


def _medal(result: dict[str, Any]) -> str | None:
    """The medal a grader awarded (NOMAD's MLE-bench-style grader does), if any."""
    medal = ((result.get("grade") or {}).get("details") or {}).get("medal")
    return None if medal is None else str(medal)


def summarize_arm(arm: ArmKey, results: list[dict[str, Any]], target: BundleTarget) -> ArmSummary:
    successes = sum(1 for r in results if r["success"])
    medals = Counter(medal for r in results if (medal := _medal(r)) is not None)
    return ArmSummary(
        arm=arm, metric=target.metric, direction=target.direction,
        runs=sorted({r["run_id"] for r in results}), seeds=sorted({r["seed"] for r in results}),
        n=len(results), successes=successes, errors=sum(1 for r in results if r["status"] == "error"),
        success_rate=stats.wilson_interval(successes, len(results)),
        score=stats.bootstrap_mean([_score(r) for r in results]),
        total_tokens=stats.bootstrap_mean([float(total_tokens(r)) for r in results]),
        cost_usd=stats.bootstrap_mean([float(r["metrics"]["cost_usd"]) for r in results]),
        llm_calls=_mean([r["metrics"]["llm_calls"] for r in results]),
        stop_reasons=dict(sorted(Counter(r["stop_reason"] for r in results).items())),
        medals=dict(sorted(medals.items())), probe_recall=arm_probe_recall(results))


def _by_seed(results: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """One result per seed: the first of `results` (a repeated seed is a replicate, not a second pair)."""
    chosen: dict[int, dict[str, Any]] = {}
    for result in results:
        chosen.setdefault(result["seed"], result)
    return chosen


def compare_pair(a_key: ArmKey, a: list[dict[str, Any]], b_key: ArmKey, b: list[dict[str, Any]],
                 direction: str | None) -> Comparison:
    a_seeds, b_seeds = _by_seed(a), _by_seed(b)
    shared = sorted(set(a_seeds) & set(b_seeds))
    scored = [s for s in shared if _score(a_seeds[s]) is not None and _score(b_seeds[s]) is not None]
    a_scores = [_score(a_seeds[s]) for s in scored]
    b_scores = [_score(b_seeds[s]) for s in scored]
    a_success = [bool(a_seeds[s]["success"]) for s in shared]
    b_success = [bool(b_seeds[s]["success"]) for s in shared]
    return Comparison(
        bundle=a_key.bundle, mode=a_key.mode, model=a_key.model, policy_a=a_key.policy, policy_b=b_key.policy,
        direction=direction, seeds=shared, only_a=sorted(set(a_seeds) - set(b_seeds)),
        only_b=sorted(set(b_seeds) - set(a_seeds)), score_pairs=len(scored),
        mean_score_a=_mean(a_scores), mean_score_b=_mean(b_scores),
        score_difference=stats.paired_bootstrap_difference(a_scores, b_scores),
        score_p=stats.sign_flip_p_value(a_scores, b_scores),
        successes_a=sum(a_success), successes_b=sum(b_success),
        success_p=stats.mcnemar_exact(a_success, b_success) if shared else None,
        probe_recall=compare_probe_recall({s: a_seeds[s] for s in shared}, {s: b_seeds[s] for s in shared}))


def paired_comparisons(groups: dict[ArmKey, list[dict[str, Any]]],
                       targets: dict[str, BundleTarget]) -> list[Comparison]:
    """Every pair of policies within a bundle × mode × model, Holm-adjusted per test across the family."""
    agents: dict[tuple[str, str, str], list[ArmKey]] = {}
    for key in groups:
        agents.setdefault((key.bundle, key.mode, key.model), []).append(key)
    found = [compare_pair(ka, groups[ka], kb, groups[kb], targets[ka.bundle].direction)
             for keys in agents.values() for ka, kb in combinations(sorted(keys, key=lambda k: k.policy), 2)]
    for comparison, p in zip(found, stats.holm_adjust([c.score_p for c in found])):
        comparison.score_p_adjusted = p
    for comparison, p in zip(found, stats.holm_adjust([c.success_p for c in found])):
        comparison.success_p_adjusted = p
    holm_adjust_probes([c.probe_recall for c in found])
    return found


def verdict(comparison: dict[str, Any]) -> str:
    """A comparison record's outcome in words, for tables."""
    if comparison["better"]:
        return f"{comparison['better']} ({'significant' if comparison['significant'] else 'not significant'})"
    if comparison["score_pairs"] == 0:
        return "no scored pairs"
    return "direction unknown" if comparison["direction"] is None else "tie"


def _run_record(run: RunResults) -> dict[str, Any]:
    """What a run holds, from its results (run.json's layout differs between single runs and sweeps)."""
    keys = [arm_key(result) for result in run.results]

    def distinct(field: str) -> list[str]:
        return sorted({getattr(key, field) for key in keys})
    return {"run_id": run.run_id, "run_dir": str(run.run_dir), "created_at": run.run.get("created_at"),
            "backend": run.run.get("backend"), "ctxeval_version": run.run.get("ctxeval_version"),
            "bundles": distinct("bundle"), "modes": distinct("mode"), "models": distinct("model"),
            "policies": distinct("policy"), "seeds": sorted({r["seed"] for r in run.results}),
            "episodes": len(run.results), "invalid": list(run.invalid)}


def pooled_results(runs: list[RunResults]) -> list[dict[str, Any]]:
    results = [result for run in runs for result in run.results]
    if not results:
        names = ", ".join(str(run.run_dir) for run in runs)
        raise CtxevalError(f"no valid episode results in {names}")
    return results


def _arm_groups(runs: list[RunResults], results: list[dict[str, Any]]) -> dict[ArmKey, list[dict[str, Any]]]:
    """Results by arm, by seed; a seed that ran more than once lists the earliest given run's episode first."""
    first_run: dict[str, int] = {}
    for index, run in enumerate(runs):
        first_run.setdefault(run.run_id, index)
    return {key: sorted(group, key=lambda r: (r["seed"], first_run.get(r["run_id"], len(runs)), r["episode_id"]))
            for key, group in group_by_arm(results).items()}


def _warnings(runs: list[RunResults], groups: dict[ArmKey, list[dict[str, Any]]],
              targets: dict[str, BundleTarget]) -> list[str]:
    found = [f"{run.run_id}: invalid result {reason}" for run in runs for reason in run.invalid]
    for key, group in groups.items():
        repeated = sorted(seed for seed, count in Counter(r["seed"] for r in group).items() if count > 1)
        if repeated:
            found.append(f"{key.label}: seed(s) {', '.join(map(str, repeated))} ran more than once; all count in "
                         f"the arm's statistics, pairs use the earliest run's episode")
    found += [f"bundle {bundle_id}: metric direction unknown, no arm is called better"
              for bundle_id, target in targets.items() if target.direction is None]
    return found


def only_policies(results: list[dict[str, Any]], policies: list[str]) -> list[dict[str, Any]]:
    """The results of these policies (a policy the runs do not hold is an error naming what they do)."""
    held = {arm_key(r).policy for r in results}
    unknown = [p for p in policies if p not in held]
    if unknown:
        raise CtxevalError(f"policy {', '.join(map(repr, unknown))} not in the run(s); they hold: {', '.join(sorted(held))}")
    return [r for r in results if arm_key(r).policy in policies]


def compare_runs(runs: list[RunResults], policies: list[str] | None = None) -> dict[str, Any]:
    """The compare document (evaluator/schemas/compare.schema.json) for the pooled results of `runs`, of
    `policies` only when given (their comparisons then form the whole Holm family)."""
    from ..jsonschemas import validate
    results = pooled_results(runs)
    if policies:
        results = only_policies(results, policies)
    targets = bundle_targets(results)
    groups = _arm_groups(runs, results)
    document = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "confidence": stats.CONFIDENCE, "alpha": ALPHA, "correction": stats.CORRECTION,
        "runs": [_run_record(run) for run in runs],
        "arms": [summarize_arm(key, group, targets[key.bundle]).as_record() for key, group in groups.items()],
        "comparisons": [c.as_record() for c in paired_comparisons(groups, targets)],
        "warnings": _warnings(runs, groups, targets),
        "policies": sorted(policies) if policies else None,
    }
    validate(document, "compare", "compare.json")
    return document


def write_compare(document: dict[str, Any], path: Path) -> Path:
    from ..atomic import write_json_atomic
    write_json_atomic(path, document)
    return path
