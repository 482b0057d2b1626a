"""The episode's wall-time budget bounds a model call in flight (issue 11, item 8): a model that
hangs is cut when the budget runs out, the cut is recorded as a cancellation (events.jsonl, the
`llm` span, the outcomes), and the episode ends normally with stop_reason wall_time and is graded.

Real episodes: the toy bundle in the local sandbox, the real openai SDK against the fake server."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evaluator.agents import create_agent
from evaluator.agents.agentic import AgenticAgent
from evaluator.bundles import load_bundle
from evaluator.episode.context import Budget
from evaluator.models import create_model, settings
from evaluator.paths import BUNDLES_DIR
from evaluator.runs import RunPlan, execute
from evaluator.tracing.jsonl import read_spans
from fake_llm_server import OPENAI_PATH, fake_llm_server, hang, tool_call  # noqa: F401
from policies.config import PolicyConfig

WALL_SECONDS = 6.0  # the episode's budget: a few seconds (the one training run takes 1.5-2.5 s of it)
SLACK_SECONDS = 1.5  # how far past the time left a cut call may end (closing the connection, scheduling)
MODEL_TIMEOUT = "8"  # per attempt, longer than the whole budget: only the deadline can end the call in time


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    for name in ("OPENAI_BASE_URL", "CTXEVAL_MAX_OUTPUT_TOKENS", "CTXEVAL_MAX_CONCURRENT_REQUESTS",
                 "CTXEVAL_OPENAI_JSON_MODE", "CTXEVAL_PRICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("CTXEVAL_MAX_RETRIES", "2")
    monkeypatch.setenv("CTXEVAL_MODEL_TIMEOUT", MODEL_TIMEOUT)
    monkeypatch.setattr("evaluator.settings.PROJECT_DOTENV", tmp_path / "no-project-root" / ".env")


def run_episode(tmp_path: Path, agent: Any, run_id: str) -> tuple[dict, list[dict], list[dict]]:
    """One episode within WALL_SECONDS: its result, its events and its spans."""
    plan = RunPlan(bundle=load_bundle(BUNDLES_DIR / "toy"), agent=agent, seeds=[0], backend="local",
                   root=tmp_path, run_id=run_id, budget=Budget(wall_seconds=WALL_SECONDS))
    [result] = execute(plan, None, None)
    episode_dir = plan.run_dir / "episodes" / plan.episode_id(0)
    events = [json.loads(line) for line in (episode_dir / "events.jsonl").read_text().splitlines()]
    return result, events, read_spans(plan.run_dir / "traces.jsonl")


def assert_cut_and_graded(result: dict, events: list[dict], spans: list[dict], summarizer: bool) -> None:
    assert result["status"] == "completed", result["error"]
    assert result["stop_reason"] == "wall_time" and result["error"] is None
    # graded: the predictions the agent's one training run wrote (below the target) got a score
    assert result["grade_errors"] == [] and result["grade"]["valid"] is True and result["score"] is not None
    assert not result["target_met"]
    assert result["outcomes"]["llm_call_cancelled"] == 1
    [cancelled] = [e for e in events if e["event"] == "llm_call_cancelled"]
    assert cancelled["summarizer"] is summarizer and "cancelled" in cancelled["reason"]
    # it waited until the budget ran out, and not longer
    assert cancelled["seconds_left"] - 0.5 <= cancelled["seconds"] <= cancelled["seconds_left"] + SLACK_SECONDS
    ts = {e["event"]: e["ts"] for e in events}
    assert ts["agent_end"] - ts["episode_start"] <= WALL_SECONDS + SLACK_SECONDS
    assert ts["graded"] >= ts["agent_end"]
    cut = [s for s in spans if s["name"] == "llm" and s["attributes"].get("ctxeval.cancelled")]
    assert len(cut) == 1 and cut[0]["status"] == "ERROR"
    assert cut[0]["attributes"]["ctxeval.summarizer"] is summarizer


TRAIN_BASELINE = tool_call("train_and_evaluate", {"config": {"model": "logistic_regression"}})


@pytest.mark.parametrize("mode", ["agentic", "controller"])
def test_a_hanging_model_call_is_cut_at_the_wall_budget_and_the_episode_graded(tmp_path, fake_llm_server, mode):
    if mode == "agentic":  # one training run first (the controller applies the starter's baseline itself)
        fake_llm_server.enqueue(TRAIN_BASELINE)
    fake_llm_server.always(hang(60))
    agent = create_agent("model", model="openai:gpt-4o", mode=mode, policy="full_history",
                         base_url=fake_llm_server.openai_base_url)
    result, events, spans = run_episode(tmp_path, agent, f"hang-{mode}")
    assert_cut_and_graded(result, events, spans, summarizer=False)
    answered = 1 if mode == "agentic" else 0
    # the hanging call was sent once: no retry started once the time was spent
    assert len(fake_llm_server.requests_to(OPENAI_PATH)) == answered + 1
    assert result["metrics"]["llm_calls"] == answered and result["metrics"]["model_seconds"] > 0


def test_a_hanging_summarizer_call_is_bounded_the_same_way(tmp_path, fake_llm_server):
    # the first turn answers at once; the summary of that turn (keep_last=0) is asked for next and hangs
    fake_llm_server.enqueue(TRAIN_BASELINE)
    fake_llm_server.always(hang(60))
    model = create_model("openai:gpt-4o", base_url=fake_llm_server.openai_base_url)
    policy = PolicyConfig(name="summarize_everything", policy="llm_summary",
                          params={"keep_last": 0, "summarize_every": 1})
    result, events, spans = run_episode(tmp_path, AgenticAgent(model, policy), "hang-summary")
    assert_cut_and_graded(result, events, spans, summarizer=True)
    requests = fake_llm_server.requests_to(OPENAI_PATH)
    assert len(requests) == 2 and "tools" not in requests[1].body  # the second is the summarizer's
    assert result["metrics"]["llm_calls"] == 1
