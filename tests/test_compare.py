"""`ctxeval compare`: per-arm statistics and paired policy comparisons, checked against independent
arithmetic on synthetic results whose values are known."""
from __future__ import annotations

import copy
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from evaluator.analysis.compare import compare_runs
from evaluator.analysis.loading import load_run
from evaluator.cli import app
from evaluator.errors import CtxevalError, ValidationFailed
from evaluator.jsonschemas import project_schema, validate

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile

# A result.json as the runner writes it (trimmed from a real toy episode); make_result varies it.
TEMPLATE: dict[str, Any] = {
    "schema_version": 1, "episode_id": "x", "run_id": "x",
    "bundle": {"id": "toy", "version": "1.0.0", "bundle_hash": "f" * 64, "grader_hash": "e" * 64, "image": None,
               "image_hash": None, "metric": "accuracy", "direction": "maximize"},
    "agent": {"kind": "controller", "mode": "controller", "model": "scripted:hill_climb",
              "policy": {"name": "full_history", "policy": "full_history", "source": "preset", "params": {}}},
    "seed": 0, "sandbox": {"backend": "local", "isolated": False}, "status": "completed",
    "stop_reason": "target_reached", "error": None, "success": True, "target_met": True, "score": 0.878,
    "best_score": 0.87, "baseline": 0.788, "relative_improvement": 0.11,
    "output": {"path": "metrics.json", "present": True, "valid": True, "errors": []},
    "grade": {"schema_version": 1, "valid": True, "score": 0.878, "metric": "accuracy", "reason": None,
              "details": {"n_correct": 439, "n_test": 500}},
    "grade_errors": [], "outcomes": {"ok": 4},
    "metrics": {"steps": 6, "llm_calls": 3, "prompt_tokens": 4539, "completion_tokens": 68, "cached_tokens": 0,
                "summarizer_tokens": 0, "cost_usd": 0.0, "wall_seconds": 12.8, "model_seconds": 0.0015,
                "sandbox_seconds": 12.4, "context_tokens": [1458, 1514, 1567],
                "full_history_tokens": [1458, 1514, 1567], "compression_ratio": 1.0,
                "iterations": [{"iteration": 0, "step": 2, "arguments": {}, "score": 0.733333, "ok": True}]},
    "artefacts": ["metrics.json"], "sandbox_events": [],
    "started_at": "2026-11-22T05:26:33.981+00:00", "finished_at": "2026-11-22T05:26:46.824+00:00",
}


def make_result(run_id: str, policy: str, seed: int, score: float | None, success: bool, *,
                bundle: str = "toy", direction: str | None = "maximize", metric: str = "accuracy",
                mode: str = "controller", model: str = "scripted:hill_climb", prompt_tokens: int = 1000,
                completion_tokens: int = 100, summarizer_tokens: int = 0, cost_usd: float = 0.0,
                llm_calls: int = 3, context_tokens: list[int] | None = None,
                full_history_tokens: list[int] | None = None, iterations: list[tuple] | None = None,
                status: str = "completed", stop_reason: str = "target_reached", baseline: float | None = 0.788,
                medal: str | None = None) -> dict[str, Any]:
    """A schema-valid result with the given values; iterations are (iteration, score) pairs (None = failed)."""
    result = copy.deepcopy(TEMPLATE)
    result["episode_id"] = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{bundle}-{mode}-{policy}-s{seed}")
    result["run_id"] = run_id
    result["bundle"].update(id=bundle, metric=metric, direction=direction)
    if direction is None:
        del result["bundle"]["direction"]
    result["agent"].update(mode=mode, model=model)
    result["agent"]["policy"]["name"] = policy
    result.update(seed=seed, score=score, success=success, target_met=success, status=status,
                  stop_reason=stop_reason, baseline=baseline, error="boom" if status == "error" else None)
    result["grade"]["score"] = score
    if medal is not None:
        result["grade"]["details"]["medal"] = medal
    metrics = result["metrics"]
    metrics.update(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                   summarizer_tokens=summarizer_tokens, cost_usd=cost_usd, llm_calls=llm_calls)
    if context_tokens is not None:
        metrics["context_tokens"] = context_tokens
        metrics["full_history_tokens"] = full_history_tokens if full_history_tokens is not None else context_tokens
    if iterations is not None:
        metrics["iterations"] = [{"iteration": i, "step": i + 2, "arguments": {}, "score": s, "ok": s is not None}
                                 for i, s in iterations]
    return result


def write_run(root: Path, run_id: str, results: list[dict[str, Any]]) -> Path:
    """A run folder as `ctxeval run` leaves it: run.json and episodes/<id>/result.json."""
    run_dir = root / run_id
    first = results[0]
    meta = {"run_id": run_id, "agent": first["agent"], "backend": "local", "bundle": {"id": first["bundle"]["id"]},
            "ctxeval_version": "0.1.0", "seeds": sorted({r["seed"] for r in results}), "schema_version": 1}
    (run_dir / "episodes").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(meta))
    for result in results:
        result = dict(result, run_id=run_id)
        episode = run_dir / "episodes" / result["episode_id"]
        episode.mkdir()
        (episode / "result.json").write_text(json.dumps(result))
    return run_dir


def arm_results(run_id: str, policy: str, scores: dict[int, float], successes: dict[int, bool] | None = None,
                **fields) -> list[dict[str, Any]]:
    successes = successes or {}
    return [make_result(run_id, policy, seed, score, successes.get(seed, True), **fields)
            for seed, score in scores.items()]


def load(root: Path, *run_ids: str):
    runs = [load_run(root / run_id) for run_id in run_ids]
    for run in runs:
        assert run.invalid == [], run.invalid  # the synthetic results really are schema-valid
    return runs


# -- independent arithmetic ----------------------------------------------------------------------

def wilson(successes: int, n: int) -> tuple[float, float, float]:
    p = successes / n
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    return p, centre - half, centre + half


def numpy_bootstrap(values: list[float], resamples: int = 100_000) -> tuple[float, float]:
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(12345)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def assert_bootstrap_close(interval: dict[str, float], values: list[float]) -> None:
    """scipy's percentile bootstrap (10k resamples) against a 100k-resample numpy one: Monte Carlo noise
    of the bounds is ~3 % of the mean's standard error, so 20 % of it is a tight but safe tolerance."""
    low, high = numpy_bootstrap(values)
    se = np.std(values, ddof=1) / math.sqrt(len(values))
    assert interval["estimate"] == pytest.approx(float(np.mean(values)), abs=1e-12)
    assert interval["low"] == pytest.approx(low, abs=0.2 * se)
    assert interval["high"] == pytest.approx(high, abs=0.2 * se)
    assert interval["low"] < interval["estimate"] < interval["high"]


def exact_sign_flip(a: list[float], b: list[float]) -> float:
    """Two-sided: the share of all 2^n sign assignments whose |mean difference| reaches the observed one."""
    diffs = np.asarray(a) - np.asarray(b)
    observed = abs(diffs.mean())
    hits = sum(abs((diffs * signs).mean()) >= observed - 1e-12
               for signs in itertools.product((1, -1), repeat=diffs.size))
    return hits / 2 ** diffs.size


def exact_mcnemar(a: list[bool], b: list[bool]) -> float:
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    n = only_a + only_b
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def holm(p: list[float]) -> list[float]:
    order = sorted(range(len(p)), key=lambda i: p[i])
    adjusted, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


# -- per-arm statistics ---------------------------------------------------------------------------

def test_arm_statistics_match_independent_computation(tmp_path):
    scores = [0.71, 0.83, 0.78, 0.90, 0.65, 0.88, 0.80]
    success = [False, True, True, True, False, True, True]
    prompt = [900, 1400, 1100, 2000, 800, 1600, 1250]
    summarizer = [0, 50, 0, 120, 0, 0, 30]
    cost = [0.011, 0.02, 0.014, 0.031, 0.009, 0.022, 0.017]
    calls = [2, 4, 3, 5, 2, 4, 3]
    results = [make_result("r1", "full_history", seed, s, ok, prompt_tokens=p, completion_tokens=100,
                           summarizer_tokens=z, cost_usd=c, llm_calls=k, medal="gold" if s > 0.85 else None)
               for seed, (s, ok, p, z, c, k) in enumerate(zip(scores, success, prompt, summarizer, cost, calls))]
    # one errored episode: no score, not a success, still counted in n and in the token/cost means
    results.append(make_result("r1", "full_history", 7, None, False, prompt_tokens=300, completion_tokens=0,
                               cost_usd=0.004, llm_calls=1, status="error", stop_reason="error"))
    write_run(tmp_path, "r1", results)

    document = compare_runs(load(tmp_path, "r1"))
    [arm] = document["arms"]
    assert arm["arm"] == {"bundle": "toy", "mode": "controller", "model": "scripted:hill_climb",
                          "policy": "full_history"}
    assert (arm["n"], arm["successes"], arm["errors"]) == (8, 5, 1)
    assert arm["seeds"] == list(range(8)) and arm["runs"] == ["r1"]
    rate, low, high = wilson(5, 8)
    assert arm["success_rate"] == pytest.approx({"estimate": rate, "low": low, "high": high}, abs=1e-9)
    assert_bootstrap_close(arm["score"], scores)  # the errored episode's missing score is left out
    tokens = [p + 100 + z for p, z in zip(prompt, summarizer)] + [300]
    assert_bootstrap_close(arm["total_tokens"], tokens)
    assert_bootstrap_close(arm["cost_usd"], cost + [0.004])
    assert arm["llm_calls"] == pytest.approx(np.mean(calls + [1]))
    assert arm["stop_reasons"] == {"error": 1, "target_reached": 7}
    assert arm["medals"] == {"gold": 2}
    assert document["comparisons"] == []


def test_a_constant_arm_a_single_episode_and_a_single_pair(tmp_path):
    write_run(tmp_path, "r1", arm_results("r1", "a", {0: 0.8, 1: 0.8, 2: 0.8}) + arm_results("r1", "b", {0: 0.5}))
    document = compare_runs(load(tmp_path, "r1"))
    arms = {a["arm"]["policy"]: a for a in document["arms"]}
    assert arms["a"]["score"] == pytest.approx({"estimate": 0.8, "low": 0.8, "high": 0.8})  # zero width
    assert arms["b"]["score"] == {"estimate": 0.5, "low": None, "high": None}  # one value: no interval
    [c] = document["comparisons"]
    assert c["seeds"] == [0] and c["only_a"] == [1, 2]
    assert c["score_difference"] == pytest.approx({"estimate": 0.3, "low": None, "high": None})
    assert c["score_p"] == 1.0  # one pair: both sign flips reach the observed difference


# -- paired comparisons ---------------------------------------------------------------------------

def test_pairs_by_seed_on_shared_seeds_only(tmp_path):
    a_scores = {0: 0.82, 1: 0.79, 2: 0.91, 3: 0.85, 4: 0.70, 5: 100.0}  # seed 5: only a ran it
    b_scores = {0: 0.75, 1: 0.80, 2: 0.84, 3: 0.77, 4: 0.69, 7: -100.0}  # seed 7: only b ran it
    a_ok = {0: True, 1: True, 2: True, 3: True, 4: False, 5: True}
    b_ok = {0: False, 1: False, 2: False, 3: True, 4: False, 7: True}
    # the two policies come from separate runs, written in reverse seed order: pairing is by seed
    write_run(tmp_path, "run-a", arm_results("run-a", "long", dict(reversed(a_scores.items())), a_ok))
    write_run(tmp_path, "run-b", arm_results("run-b", "short", b_scores, b_ok))

    document = compare_runs(load(tmp_path, "run-a", "run-b"))
    [c] = document["comparisons"]
    shared = [0, 1, 2, 3, 4]
    a = [a_scores[s] for s in shared]
    b = [b_scores[s] for s in shared]
    assert (c["policy_a"], c["policy_b"]) == ("long", "short")
    assert (c["seeds"], c["only_a"], c["only_b"], c["pairs"], c["score_pairs"]) == (shared, [5], [7], 5, 5)
    assert c["mean_score_a"] == pytest.approx(np.mean(a)) and c["mean_score_b"] == pytest.approx(np.mean(b))
    assert_bootstrap_close(c["score_difference"], [x - y for x, y in zip(a, b)])
    assert c["score_p"] == pytest.approx(exact_sign_flip(a, b), abs=1e-12)
    assert c["score_p"] == pytest.approx(6 / 32)  # by hand: flips of the two ±0.01 seeds only, both ways
    a_ok_shared, b_ok_shared = [a_ok[s] for s in shared], [b_ok[s] for s in shared]
    assert (c["successes_a"], c["successes_b"]) == (4, 1)
    assert c["success_p"] == pytest.approx(exact_mcnemar(a_ok_shared, b_ok_shared)) == pytest.approx(0.25)
    # a single comparison is a family of one: adjustment leaves the p-values alone
    assert c["score_p_adjusted"] == c["score_p"] and c["success_p_adjusted"] == c["success_p"]
    assert c["better"] == "long" and c["significant"] is False
    assert document["correction"] == "holm-bonferroni"


def test_a_seed_run_twice_counts_in_the_arm_but_pairs_once_from_the_earliest_run(tmp_path):
    write_run(tmp_path, "z-first", arm_results("z-first", "p", {0: 0.9, 1: 0.8})
              + arm_results("z-first", "q", {0: 0.5, 1: 0.5}))
    write_run(tmp_path, "a-second", arm_results("a-second", "p", {0: 0.1}))
    document = compare_runs(load(tmp_path, "z-first", "a-second"))
    arm_p = next(a for a in document["arms"] if a["arm"]["policy"] == "p")
    assert arm_p["n"] == 3 and arm_p["score"]["estimate"] == pytest.approx(0.6)
    [c] = document["comparisons"]
    assert c["seeds"] == [0, 1]
    assert c["score_difference"]["estimate"] == pytest.approx(((0.9 - 0.5) + (0.8 - 0.5)) / 2)  # seed 0 from z-first
    assert any("seed(s) 0 ran more than once" in w for w in document["warnings"])


def test_holm_adjusts_across_the_family_of_comparisons(tmp_path):
    seeds = range(6)
    base = [0.70, 0.72, 0.68, 0.75, 0.71, 0.69]
    arms = {"a": [s + d for s, d in zip(base, [0.10, 0.12, 0.09, 0.15, 0.11, 0.13])],  # a beats b every seed
            "b": base,
            "c": [s + d for s, d in zip(base, [0.05, -0.02, 0.04, -0.01, 0.03, 0.06])]}
    ok = {"a": [True] * 6, "b": [False] * 6, "c": [True, False, True, False, True, True]}
    results = [make_result("r1", policy, seed, values[seed], ok[policy][seed])
               for policy, values in arms.items() for seed in seeds]
    # another bundle's comparison belongs to the same family
    results += [make_result("r1", p, seed, v, True, bundle="other", direction="minimize", baseline=None)
                for p, vs in {"a": [0.3, 0.2, 0.25, 0.4], "b": [0.31, 0.22, 0.24, 0.45]}.items()
                for seed, v in enumerate(vs)]
    write_run(tmp_path, "r1", results)

    comparisons = compare_runs(load(tmp_path, "r1"))["comparisons"]
    pairs = [(c["bundle"], c["policy_a"], c["policy_b"]) for c in comparisons]
    assert pairs == [("other", "a", "b"), ("toy", "a", "b"), ("toy", "a", "c"), ("toy", "b", "c")]
    other = {"a": [0.3, 0.2, 0.25, 0.4], "b": [0.31, 0.22, 0.24, 0.45]}
    raw = [exact_sign_flip(other["a"], other["b"])] + [exact_sign_flip(arms[x], arms[y]) for _, x, y in pairs[1:]]
    assert [c["score_p"] for c in comparisons] == pytest.approx(raw, abs=1e-12)
    assert raw[1] == pytest.approx(2 / 64)  # a beats b on all six seeds
    assert [c["score_p_adjusted"] for c in comparisons] == pytest.approx(holm(raw), abs=1e-12)
    # raw p = 0.03125 < 0.05, but not once corrected for four comparisons
    toy_ab = comparisons[1]
    assert toy_ab["score_p"] < 0.05 < toy_ab["score_p_adjusted"] and toy_ab["significant"] is False
    assert toy_ab["better"] == "a"

    raw_success = [1.0] + [exact_mcnemar(ok[x], ok[y]) for _, x, y in pairs[1:]]
    assert [c["success_p"] for c in comparisons] == pytest.approx(raw_success)
    assert [c["success_p_adjusted"] for c in comparisons] == pytest.approx(holm(raw_success))


def test_compare_restricted_to_some_policies_holm_adjusts_within_them(tmp_path):
    seeds = range(6)
    base = [0.70, 0.72, 0.68, 0.75, 0.71, 0.69]
    arms = {"a": [s + 0.1 for s in base], "b": base, "c": [s + 0.05 for s in base]}
    results = [make_result("r1", policy, seed, values[seed], True) for policy, values in arms.items() for seed in seeds]
    write_run(tmp_path, "r1", results)

    document = compare_runs(load(tmp_path, "r1"), ["b", "a"])
    assert [(c["policy_a"], c["policy_b"]) for c in document["comparisons"]] == [("a", "b")]
    assert sorted(arm["arm"]["policy"] for arm in document["arms"]) == ["a", "b"] and document["policies"] == ["a", "b"]
    (only,) = document["comparisons"]
    assert only["score_p"] == pytest.approx(2 / 64) and only["score_p_adjusted"] == pytest.approx(2 / 64)
    assert only["significant"] is True  # alone in its family; among all three pairs it would not be
    whole = compare_runs(load(tmp_path, "r1"))
    assert whole["policies"] is None and whole["comparisons"][0]["score_p_adjusted"] > 0.05
    with pytest.raises(CtxevalError, match=r"'d' not in the run.*they hold: a, b, c"):
        compare_runs(load(tmp_path, "r1"), ["a", "d"])


def test_a_minimised_metric_calls_the_lower_score_better(tmp_path):
    low = {0: 0.061, 1: 0.058, 2: 0.060}
    high = {0: 0.070, 1: 0.072, 2: 0.069}
    write_run(tmp_path, "r1", arm_results("r1", "low", low, bundle="nomad", direction="minimize", metric="mean_rmsle")
              + arm_results("r1", "high", high, bundle="nomad", direction="minimize", metric="mean_rmsle"))
    document = compare_runs(load(tmp_path, "r1"))
    [c] = document["comparisons"]
    assert (c["policy_a"], c["policy_b"], c["direction"]) == ("high", "low", "minimize")
    assert c["score_difference"]["estimate"] > 0  # a − b: high minus low
    assert c["better"] == "low"
    assert {a["direction"] for a in document["arms"]} == {"minimize"}


def test_a_result_without_a_direction_takes_it_from_the_bundle(tmp_path):
    """Older results lack bundle.direction: nomad's manifest says minimize, toy's maximize."""
    results = (arm_results("r1", "p", {0: 0.05, 1: 0.06}, bundle="nomad", direction=None, metric="mean_rmsle")
               + arm_results("r1", "q", {0: 0.07, 1: 0.08}, bundle="nomad", direction=None, metric="mean_rmsle")
               + arm_results("r1", "p", {0: 0.05, 1: 0.06}, direction=None)
               + arm_results("r1", "q", {0: 0.07, 1: 0.08}, direction=None))
    write_run(tmp_path, "r1", results)
    by_bundle = {c["bundle"]: c for c in compare_runs(load(tmp_path, "r1"))["comparisons"]}
    assert by_bundle["nomad"]["direction"] == "minimize" and by_bundle["nomad"]["better"] == "p"
    assert by_bundle["toy"]["direction"] == "maximize" and by_bundle["toy"]["better"] == "q"


def test_an_unknown_direction_names_no_winner_and_warns(tmp_path):
    write_run(tmp_path, "r1", arm_results("r1", "p", {0: 1.0, 1: 2.0}, bundle="gone", direction=None)
              + arm_results("r1", "q", {0: 3.0, 1: 4.0}, bundle="gone", direction=None))
    document = compare_runs(load(tmp_path, "r1"))
    assert document["comparisons"][0]["direction"] is None and document["comparisons"][0]["better"] is None
    assert any("gone" in w and "direction unknown" in w for w in document["warnings"])


def test_different_agents_are_not_paired(tmp_path):
    write_run(tmp_path, "r1", arm_results("r1", "p", {0: 0.8}, model="openai:gpt-x")
              + arm_results("r1", "q", {0: 0.7}, model="anthropic:claude-y"))
    document = compare_runs(load(tmp_path, "r1"))
    assert len(document["arms"]) == 2 and document["comparisons"] == []


# -- the document ---------------------------------------------------------------------------------

def test_the_document_is_valid_and_the_schema_is_strict(tmp_path):
    write_run(tmp_path, "r1", arm_results("r1", "p", {0: 0.8, 1: 0.9}) + arm_results("r1", "q", {0: 0.7, 1: 0.6}))
    document = compare_runs(load(tmp_path, "r1"))
    Draft202012Validator.check_schema(project_schema("compare"))
    validate(document, "compare", "compare.json")
    for breakage in (lambda d: d.pop("correction"),
                     lambda d: d.update(correction="bonferroni"),
                     lambda d: d["comparisons"][0].update(score_p=1.5),
                     lambda d: d["arms"][0]["success_rate"].update(high=1.2),
                     lambda d: d["arms"][0].update(surprise=1)):
        broken = copy.deepcopy(document)
        breakage(broken)
        with pytest.raises(ValidationFailed):
            validate(broken, "compare", "compare.json")


def test_invalid_results_are_reported_and_the_rest_compared(tmp_path):
    run_dir = write_run(tmp_path, "r1", arm_results("r1", "p", {0: 0.8, 1: 0.9}))
    (run_dir / "episodes" / "broken").mkdir()
    (run_dir / "episodes" / "broken" / "result.json").write_text("{not json")
    document = compare_runs([load_run(run_dir)])
    assert document["arms"][0]["n"] == 2
    assert document["runs"][0]["invalid"] and any("not JSON" in w for w in document["warnings"])


def test_a_run_without_results_is_an_error(tmp_path):
    (tmp_path / "empty" / "episodes").mkdir(parents=True)
    with pytest.raises(CtxevalError, match="no valid episode results"):
        compare_runs([load_run(tmp_path / "empty")])


# -- the command ----------------------------------------------------------------------------------

def test_cli_compare_writes_the_document_and_prints_it(tmp_path):
    run_dir = write_run(tmp_path, "r1", arm_results("r1", "alpha_pol", {0: 0.8, 1: 0.9})
                        + arm_results("r1", "beta_pol", {0: 0.7, 1: 0.6}))
    runner = CliRunner()
    result = runner.invoke(app, ["compare", "r1", "--json"], env={"CTXEVAL_RUNS_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    written = json.loads((run_dir / "compare.json").read_text())
    assert printed == written
    validate(written, "compare", "compare.json")

    table = runner.invoke(app, ["compare", str(run_dir), str(run_dir), "--out", str(tmp_path / "both.json")])
    assert table.exit_code == 0, table.output
    assert "holm-bonferroni" in table.stdout and "alpha_pol" in table.stdout and "beta_pol" in table.stdout
    both = json.loads((tmp_path / "both.json").read_text())
    assert both["arms"][0]["n"] == 4  # the same run twice: pooled

    picked = runner.invoke(app, ["compare", "r1", "--policy", "beta_pol", "--json"], env={"CTXEVAL_RUNS_DIR": str(tmp_path)})
    assert picked.exit_code == 0, picked.output
    assert [a["arm"]["policy"] for a in json.loads(picked.stdout)["arms"]] == ["beta_pol"]
    unknown = runner.invoke(app, ["compare", "r1", "--policy", "gamma_pol"], env={"CTXEVAL_RUNS_DIR": str(tmp_path)})
    assert unknown.exit_code != 0 and "'gamma_pol' not in the run" in unknown.output


def test_cli_compare_warns_of_invalid_results(tmp_path):
    run_dir = write_run(tmp_path, "r1", arm_results("r1", "p", {0: 0.8, 1: 0.9}))
    (run_dir / "episodes" / "broken").mkdir()
    (run_dir / "episodes" / "broken" / "result.json").write_text('{"schema_version": [1]}')
    result = CliRunner().invoke(app, ["compare", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "broken/result.json" in result.stderr
    assert "is a required property" in result.stderr


def test_cli_compare_of_a_missing_run_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["compare", "no-such-run"], env={"CTXEVAL_RUNS_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert "error:" in result.stderr and "no run 'no-such-run'" in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
