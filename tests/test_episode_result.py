"""The typed episode result: the runner builds it, writes exactly its record, and the record reads
back into the same result; a stop that is not a budget is recorded as itself (local backend)."""
from __future__ import annotations

import json

import pytest

from evaluator.agents.base import Agent
from evaluator.agents.fixed import OracleAgent
from evaluator.bundles.grading_helper import grader_hash
from evaluator.episode.context import EpisodeContext
from evaluator.episode.result import EpisodeResult, EpisodeTotals, Status, StopReason
from evaluator.episode.runner import RESULT_FILE, EpisodeOptions, run_episode
from evaluator.errors import EpisodeEnded
from evaluator.jsonschemas import validate


class EndsWith(Agent):
    """Stops the episode the way an agent does when it gives up: by raising EpisodeEnded."""

    kind = "ends_with"

    def __init__(self, reason: StopReason):
        self.reason = reason

    def run(self, ctx: EpisodeContext) -> None:
        raise EpisodeEnded(self.reason)


def _run(bundle, data, agent, tmp_path, name: str) -> dict:
    options = EpisodeOptions(run_id="pytest-result", episode_id=name, seed=1, backend="local",
                             episode_dir=tmp_path / name)
    return run_episode(bundle, agent, options, data)


@pytest.fixture(scope="module")
def oracle_record(toy_bundle, toy_data, tmp_path_factory):
    return _run(toy_bundle, toy_data, OracleAgent(), tmp_path_factory.mktemp("result"), "oracle")


def test_the_written_record_is_the_returned_one_and_reads_back_whole(oracle_record, tmp_path_factory):
    assert oracle_record["status"] == "completed" and oracle_record["success"] is True
    result = EpisodeResult.from_record(oracle_record)
    assert result.to_record() == oracle_record
    assert json.loads(json.dumps(result.to_record())) == oracle_record
    assert result.status is Status.COMPLETED and isinstance(result.metrics, EpisodeTotals)
    assert result.metrics.steps == oracle_record["metrics"]["steps"] > 0
    assert result["score"] == result.score == oracle_record["score"]  # a mapping of its record, too
    validate(result.to_record(), "episode_result", RESULT_FILE)


def test_the_recorded_grader_hash_covers_the_grading_helper(oracle_record, toy_bundle):
    assert oracle_record["bundle"]["grader_hash"] == grader_hash(toy_bundle)


def test_a_metrics_record_keeps_its_series_apart_from_the_counters(oracle_record):
    metrics = oracle_record["metrics"]
    totals = EpisodeTotals.from_record(metrics)
    assert "context_tokens" in totals.series and "steps" not in totals.series
    assert totals.to_record() == metrics


@pytest.mark.parametrize("reason", [StopReason.INVALID_PROPOSALS, StopReason.MODEL])
def test_a_stop_that_is_not_a_budget_is_recorded_as_itself(reason, toy_bundle, toy_data, tmp_path):
    record = _run(toy_bundle, toy_data, EndsWith(reason), tmp_path, f"ends-{reason}")
    assert not reason.is_budget
    assert record["status"] == "completed" and record["error"] is None
    assert record["stop_reason"] == reason.value
    assert record["grade"] is not None  # the workspace is still graded (the starter, unchanged)
    on_disk = json.loads((tmp_path / f"ends-{reason}" / RESULT_FILE).read_text())
    assert on_disk == record
