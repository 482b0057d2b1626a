"""Probe recall as a statistic: per episode from the probe records (evaluator/episode/probe_recall.py),
pooled per arm in summary.json and compare.json, and paired between policies by seed with the
score's tests — checked against hand-computed values on synthetic result.json files."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evaluator.analysis.compare import compare_runs
from evaluator.cli import app
from evaluator.episode.probe_recall import BUCKETS, distance_bucket, probe_recall
from evaluator.errors import ValidationFailed
from evaluator.jsonschemas import project_schema, validate, violations
from evaluator.runs import summarize
from test_compare import exact_sign_flip, holm, load, make_result, wilson, write_run

# -- records ----------------------------------------------------------------------------------------


def record(probe: str, asked: int, planted: int | None = 2, *, status: str = "answered",
           correct: bool | None = True, decisive: bool = False, answer: str | None = None) -> dict[str, Any]:
    """A probe record as the spec lays it out (distance = asked - planted)."""
    if status != "answered":
        correct = None
    if status == "not_planted":
        planted = None
    return {"id": probe, "decisive": decisive, "planted_call": planted, "asked_call": asked,
            "distance": None if planted is None else asked - planted, "status": status,
            "fact_in_context": None if planted is None else bool(correct),
            "answer": answer if answer is not None else ("f23" if correct else None if status != "answered"
                                                         else "no idea"),
            "correct": correct, "prompt_tokens": 40, "completion_tokens": 3, "cost_usd": 0.0}


# Seed 0: four answered (three correct, one garbled answer), one not planted, one not asked.
SEED0 = [record("leak", 3, decisive=True), record("leak", 4, decisive=True),
         record("leak", 10, correct=False, decisive=True, answer="\x00\ufffdf2?"),
         record("cfg", 6, 5), record("late", 4, status="not_planted"), record("cfg", 30, 5, status="not_asked")]
SEED0_RECALL = {"overall": 0.75, "answered": 4, "correct": 3, "not_planted": 1,
                "by_distance": {"1": 1.0, "2-3": 1.0, "8-15": 0.0}}
# Seed 1: three answered (two correct), one not planted.
SEED1 = [record("leak", 3, correct=False, decisive=True, answer="I don't know"), record("leak", 42, decisive=True),
         record("cfg", 8, 5), record("late", 9, status="not_planted")]
SEED1_RECALL = {"overall": 2 / 3, "answered": 3, "correct": 2, "not_planted": 1,
                "by_distance": {"1": 0.0, "2-3": 1.0, "32+": 1.0}}


def with_probes(result: dict[str, Any], records: list[dict[str, Any]] | None,
                recall: dict[str, Any] | None = None) -> dict[str, Any]:
    """A result with probe records and the per-episode object the runner writes beside them."""
    result = copy.deepcopy(result)
    result["probes"] = records
    result["probe_recall"] = recall
    result["metrics"].update(probe_tokens=43 * len(records or []), probe_cost_usd=0.0)
    return result


def test_distance_buckets_and_their_edges():
    assert BUCKETS == ("1", "2-3", "4-7", "8-15", "16-31", "32+")
    edges = {1: "1", 2: "2-3", 3: "2-3", 4: "4-7", 7: "4-7", 8: "8-15", 15: "8-15", 16: "16-31", 31: "16-31",
             32: "32+", 33: "32+", 10_000: "32+"}
    assert {d: distance_bucket(d) for d in edges} == edges
    for bad in (0, -1, -32):
        with pytest.raises(ValueError):
            distance_bucket(bad)
    with pytest.raises(TypeError):
        distance_bucket(2.0)


def test_recall_from_records_counts_only_answered_probes():
    assert probe_recall(SEED0) == SEED0_RECALL  # a garbled answer is a miss; not_planted apart; not_asked nowhere
    assert probe_recall(SEED1) == SEED1_RECALL  # 2 / 3 computed alike
    assert probe_recall([]) is None and probe_recall(None) is None
    # every plant after the episode ended: nothing answered, nothing missed
    assert probe_recall([record("late", 4, status="not_planted")] * 2) == \
        {"overall": None, "answered": 0, "correct": 0, "not_planted": 2, "by_distance": {}}
    # an answered record whose correct is not true (null here) is no hit
    odd = dict(record("leak", 3), correct=None)
    assert probe_recall([odd, record("leak", 4)])["overall"] == 0.5


def test_the_result_schema_takes_probes_and_old_results_stay_valid():
    schema = project_schema("episode_result")
    base = make_result("r1", "p", 0, 0.8, True)
    assert violations(base, schema, "result.json") == []  # no probes: still valid
    probed = with_probes(base, SEED0, SEED0_RECALL)
    assert violations(probed, schema, "result.json") == []
    assert violations(with_probes(base, [], None), schema, "result.json") == []  # probes off
    for breakage in (lambda r: r["probes"][0].update(status="skipped"),
                     lambda r: r["probes"][0].update(distance=0),
                     lambda r: r["probes"][0].update(answer="x" * 2001),
                     lambda r: r["probes"][0].pop("correct"),
                     lambda r: r["probe_recall"].update(overall=1.5),
                     lambda r: r["probe_recall"]["by_distance"].update({"64+": 1.0}),
                     lambda r: r["metrics"].update(probe_tokens=-1),
                     lambda r: r["metrics"].update(probe_cost_usd=-0.1)):
        broken = copy.deepcopy(probed)
        breakage(broken)
        with pytest.raises(ValidationFailed):
            validate(broken, schema, "result.json")


# -- pooled per arm ------------------------------------------------------------------------------------

def probed_arm(run_id: str, policy: str) -> list[dict[str, Any]]:
    """Seeds 0 and 1 with probes, seed 2 an old result without any."""
    return [with_probes(make_result(run_id, policy, 0, 0.8, True), SEED0, SEED0_RECALL),
            with_probes(make_result(run_id, policy, 1, 0.7, True), SEED1, SEED1_RECALL),
            make_result(run_id, policy, 2, 0.9, True)]


def interval(successes: int, n: int) -> dict[str, float]:
    estimate, low, high = wilson(successes, n)
    return {"estimate": estimate, "low": low, "high": high}


def assert_pooled_block(block: dict[str, Any]) -> None:
    """The hand count over SEED0 + SEED1 (seed 2 has no probes)."""
    assert (block["episodes"], block["answered"], block["correct"], block["not_planted"]) == (2, 7, 5, 2)
    assert block["overall"] == pytest.approx(interval(5, 7), abs=1e-9)
    assert set(block["by_distance"]) == {"1", "2-3", "8-15", "32+"}  # only buckets with answered probes
    for bucket, (correct, answered) in {"1": (2, 3), "2-3": (2, 2), "8-15": (0, 1), "32+": (1, 1)}.items():
        tally = block["by_distance"][bucket]
        assert (tally["correct"], tally["answered"]) == (correct, answered)
        assert tally["recall"] == pytest.approx(interval(correct, answered), abs=1e-9)
    decisive = block["decisive"]
    assert (decisive["correct"], decisive["answered"]) == (3, 5)
    assert decisive["recall"] == pytest.approx(interval(3, 5), abs=1e-9)
    mean = block["episode_mean"]
    assert mean["estimate"] == pytest.approx((0.75 + 2 / 3) / 2)
    assert 2 / 3 - 1e-12 <= mean["low"] <= mean["estimate"] <= mean["high"] <= 0.75 + 1e-12


def test_summary_and_compare_pool_the_arms_probes(tmp_path):
    write_run(tmp_path, "r1", probed_arm("r1", "full_history") + [make_result("r1", "old", 0, 0.5, False)])
    [run] = load(tmp_path, "r1")
    summary = summarize(run.results)
    arms = summary["arms"]
    assert_pooled_block(arms["toy controller scripted:hill_climb full_history"]["probe_recall"])
    assert "probe_recall" not in arms["toy controller scripted:hill_climb old"]  # no probes: no block
    assert json.loads(json.dumps(summary)) == summary == summarize(list(reversed(run.results)))  # deterministic

    document = compare_runs([run])
    validate(document, "compare", "compare.json")
    by_policy = {a["arm"]["policy"]: a for a in document["arms"]}
    assert_pooled_block(by_policy["full_history"]["probe_recall"])
    assert "probe_recall" not in by_policy["old"]
    [c] = document["comparisons"]  # full_history against old: only one side has probes, so no pairs
    assert c["probe_recall"]["pairs"] == 0 and c["probe_recall"]["p"] is None
    assert c["probe_recall"]["better"] is None and c["probe_recall"]["significant"] is False


def test_the_stored_object_counts_when_a_result_has_no_records(tmp_path):
    """A result carrying only probe_recall (no records): its counts pool, with no decisive/distance split."""
    result = make_result("r1", "p", 0, 0.8, True)
    result["probe_recall"] = dict(SEED0_RECALL)
    write_run(tmp_path, "r1", [result])
    block = summarize(load(tmp_path, "r1")[0].results)["arms"]["toy controller scripted:hill_climb p"]["probe_recall"]
    assert (block["answered"], block["correct"], block["not_planted"], block["by_distance"]) == (4, 3, 1, {})
    assert block["decisive"]["answered"] == 0 and block["decisive"]["recall"]["estimate"] is None


def test_old_results_without_probes_still_summarise_and_compare(tmp_path):
    results = [make_result("r1", p, s, 0.8 - 0.1 * s, True) for p in ("a", "b") for s in range(3)]
    results[0] = with_probes(results[0], [], None)  # probes off: an empty list and a null object
    write_run(tmp_path, "r1", results)
    [run] = load(tmp_path, "r1")
    summary = summarize(run.results)
    assert all("probe_recall" not in arm for arm in summary["arms"].values())
    document = compare_runs([run])
    validate(document, "compare", "compare.json")
    assert all("probe_recall" not in a for a in document["arms"])
    assert all("probe_recall" not in c for c in document["comparisons"])
    table = CliRunner().invoke(app, ["compare", str(run.run_dir)])
    assert table.exit_code == 0, table.output
    assert "probe recall" not in table.stdout and "recall a − b" not in table.stdout


# -- paired by seed ---------------------------------------------------------------------------------------

SEEDS = range(10)


def recall_arm(run_id: str, policy: str, correct: bool) -> list[dict[str, Any]]:
    """Ten seeds, each with two answered probes that are all recalled (or all missed); equal scores."""
    results = []
    for seed in SEEDS:
        records = [record("leak", 4, correct=correct, decisive=True), record("cfg", 12, correct=correct)]
        results.append(with_probes(make_result(run_id, policy, seed, 0.8, True), records, probe_recall(records)))
    return results


def test_paired_probe_recall_all_against_nothing_and_a_tie(tmp_path):
    write_run(tmp_path, "r1", recall_arm("r1", "keeps", True) + recall_arm("r1", "forgets", False)
              + recall_arm("r1", "keeps_too", True))
    document = compare_runs(load(tmp_path, "r1"))
    validate(document, "compare", "compare.json")
    pairs = {(c["policy_a"], c["policy_b"]): c["probe_recall"] for c in document["comparisons"]}
    assert set(pairs) == {("forgets", "keeps"), ("forgets", "keeps_too"), ("keeps", "keeps_too")}
    ones, zeros = [1.0] * len(SEEDS), [0.0] * len(SEEDS)
    raw = exact_sign_flip(zeros, ones)
    assert raw == pytest.approx(2 / 2 ** len(SEEDS))  # only the all-same-sign flips reach |mean| = 1
    adjusted = holm([raw, raw, 1.0])  # the family: the two one-sided-by-construction pairs and the tie
    for key in (("forgets", "keeps"), ("forgets", "keeps_too")):
        c = pairs[key]
        assert (c["pairs"], c["seeds"], c["mean_a"], c["mean_b"]) == (10, list(SEEDS), 0.0, 1.0)
        assert c["difference"] == {"estimate": -1.0, "low": -1.0, "high": -1.0}
        assert c["p"] == pytest.approx(raw, abs=1e-12)
        assert c["p_adjusted"] == pytest.approx(adjusted[0], abs=1e-12) and c["p_adjusted"] < 0.05
        assert c["better"] == key[1] and c["significant"] is True
    tie = pairs[("keeps", "keeps_too")]
    assert tie["p"] == 1.0 and tie["p_adjusted"] == 1.0
    assert tie["better"] is None and tie["significant"] is False
    # the score family is separate: equal scores everywhere, nothing significant there
    assert all(c["score_p"] == 1.0 and not c["significant"] for c in document["comparisons"])
    arms = {a["arm"]["policy"]: a["probe_recall"] for a in document["arms"]}
    assert arms["keeps"]["overall"] == pytest.approx(interval(20, 20), abs=1e-9)
    assert arms["forgets"]["overall"] == pytest.approx(interval(0, 20), abs=1e-9)
    assert arms["keeps"]["decisive"]["answered"] == 10

    table = CliRunner().invoke(app, ["compare", str(tmp_path / "r1")])
    assert table.exit_code == 0, table.output
    assert "probe recall" in table.stdout and "recall a − b" in table.stdout
    assert "20/20" in table.stdout and "0/20" in table.stdout
    assert "0.00586" in table.stdout and "keeps*" in table.stdout  # adjusted p, the higher-recall policy


def test_pairs_need_answered_probes_on_both_sides(tmp_path):
    a = recall_arm("r1", "a", True)
    b = recall_arm("r1", "b", False)
    b[3] = with_probes(b[3], [record("late", 4, status="not_planted")], None)  # nothing answered at seed 3
    b[4] = make_result("r1", "b", 4, 0.8, True)  # an old result at seed 4
    write_run(tmp_path, "r1", a + b)
    [c] = compare_runs(load(tmp_path, "r1"))["comparisons"]
    assert c["pairs"] == 10  # the score pairs every seed
    assert c["probe_recall"]["seeds"] == [s for s in SEEDS if s not in (3, 4)]
    assert c["probe_recall"]["p"] == pytest.approx(2 / 2 ** 8)
