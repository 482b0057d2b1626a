"""Agentic and controller episodes driven by the REAL openai and anthropic SDKs against a local
fake server that speaks their wire formats, in real containers: malformed calls are answered
with an error observation and the episode goes on; a 429 is retried; a 500 storm ends the
episode with a clear recorded error and nothing is lost."""
from __future__ import annotations

import json

import pytest

from evaluator.agents import create_agent
from evaluator.runs import RunPlan, execute
from fake_llm_server import ANTHROPIC_PATH, OPENAI_PATH, error, fake_llm_server, text, tool_call  # noqa: F401

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setenv("CTXEVAL_MAX_RETRIES", "2")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key")


def run(tmp_path, toy_bundle, toy_image, agent, run_id):
    plan = RunPlan(bundle=toy_bundle, agent=agent, seeds=[0], backend="docker", root=tmp_path, run_id=run_id)
    [result] = execute(plan, toy_image.tag, toy_image.input_hash)
    events = [json.loads(line) for line in
              (plan.run_dir / "episodes" / plan.episode_id(0) / "events.jsonl").read_text().splitlines()]
    return result, events


def test_openai_agentic_malformed_calls_get_error_observations(tmp_path, toy_bundle, toy_image, fake_llm_server):
    usage = {"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020,
             "prompt_tokens_details": {"cached_tokens": 400}}
    fake_llm_server.enqueue(
        tool_call("exec", "{not json", usage=usage),
        tool_call("launch_rockets", {"count": 3}, usage=usage),
        tool_call("train_and_evaluate", {"config": {"model": "random_forest"}}, usage=usage),
    )
    agent = create_agent("model", model="openai:gpt-4o", mode="agentic", policy="full_history",
                         base_url=fake_llm_server.openai_base_url)
    result, events = run(tmp_path, toy_bundle, toy_image, agent, "oa")
    assert result["status"] == "completed", result["error"]
    assert result["stop_reason"] == "target_reached" and result["success"] is True
    assert result["outcomes"]["tool_call_rejected"] == 2
    metrics = result["metrics"]
    assert metrics["llm_calls"] == 3 and metrics["prompt_tokens"] == 3000
    assert metrics["completion_tokens"] == 60 and metrics["cached_tokens"] == 1200
    assert metrics["cost_usd"] > 0
    requests = fake_llm_server.requests_to(OPENAI_PATH)
    assert len(requests) == 3
    # the tool result answering the malformed call went back to the model, paired with its call
    second = requests[1].body["messages"]
    tool_messages = [m for m in second if m["role"] == "tool"]
    assert tool_messages and "not a JSON object" in tool_messages[-1]["content"]
    assert any(t["function"]["name"] == "train_and_evaluate" for t in requests[0].body["tools"])
    third = requests[2].body["messages"]
    assert "unknown tool 'launch_rockets'" in [m for m in third if m["role"] == "tool"][-1]["content"]
    rejected = [e for e in events if e.get("action") == "rejected_tool_call"]
    assert [e["tool"] for e in rejected] == ["exec", "launch_rockets"]


def test_anthropic_agentic_429_is_retried(tmp_path, toy_bundle, toy_image, fake_llm_server):
    usage = {"input_tokens": 700, "output_tokens": 15, "cache_read_input_tokens": 0}
    fake_llm_server.enqueue(error(429, headers={"retry-after-ms": "10"}),
                            tool_call("submit", {"summary": "giving up early"}, usage=usage))
    agent = create_agent("model", model="anthropic:claude-sonnet-4-6", mode="agentic", policy="short_context",
                         base_url=fake_llm_server.anthropic_base_url)
    result, _ = run(tmp_path, toy_bundle, toy_image, agent, "an")
    assert len(fake_llm_server.requests_to(ANTHROPIC_PATH)) == 2
    assert result["status"] == "completed" and result["stop_reason"] == "submitted"
    assert result["metrics"]["llm_calls"] == 1 and result["metrics"]["prompt_tokens"] == 700
    body = fake_llm_server.requests_to(ANTHROPIC_PATH)[-1].body
    assert "clarify" in {t["name"] for t in body["tools"]} and isinstance(body["system"], (str, list))
    assert result["success"] is False  # the starter was never improved


def test_500_storm_ends_the_episode_with_a_recorded_error(tmp_path, toy_bundle, toy_image, fake_llm_server):
    fake_llm_server.always(error(500, message="upstream exploded"))
    agent = create_agent("model", model="openai:gpt-4o", mode="agentic", base_url=fake_llm_server.openai_base_url)
    result, events = run(tmp_path, toy_bundle, toy_image, agent, "storm")
    assert result["status"] == "error" and result["stop_reason"] == "model_error"
    assert "HTTP 500" in result["error"] and "sk-test" not in json.dumps(result)
    assert len(fake_llm_server.requests_to(OPENAI_PATH)) == 3  # 1 + 2 retries
    assert result["grade"] is not None  # the workspace was still graded; nothing lost
    assert events[-1]["event"] == "episode_end"


def test_openai_controller_mode_parses_json_proposals(tmp_path, toy_bundle, toy_image, fake_llm_server):
    fake_llm_server.enqueue(
        text("I propose: " + json.dumps({"config": {"model": "knn", "n_neighbors": 0}})),  # schema violation
        text(json.dumps({"config": {"model": "gradient_boosting", "max_depth": 3}, "rationale": "boosting"})),
    )
    agent = create_agent("model", model="openai:gpt-4o-mini", mode="controller", policy="long_context",
                         base_url=fake_llm_server.openai_base_url)
    result, events = run(tmp_path, toy_bundle, toy_image, agent, "ctl")
    assert result["status"] == "completed" and result["stop_reason"] == "target_reached"
    assert result["outcomes"]["invalid_proposal"] == 1
    assert [e for e in events if e["event"] == "invalid_proposal"][0]["error"].startswith("$.config.n_neighbors")
    baseline, first = result["metrics"]["iterations"][:2]
    assert baseline["iteration"] == 0 and baseline["arguments"]["config"]["model"] == "logistic_regression"
    assert first["iteration"] == 1 and first["arguments"]["config"]["model"] == "gradient_boosting"
    assert "response_format" in fake_llm_server.requests_to(OPENAI_PATH)[0].body


def test_recorded_episode_replays_to_the_same_actions(tmp_path, toy_bundle, toy_image):
    cassette = tmp_path / "cassette.jsonl"
    recorded, _ = run(tmp_path, toy_bundle, toy_image,
                      create_agent("model", mode="agentic", record=cassette), "rec")
    replayed, _ = run(tmp_path, toy_bundle, toy_image,
                      create_agent("model", model=f"replay:{cassette}", mode="agentic"), "rep")
    assert len(cassette.read_text().splitlines()) == recorded["metrics"]["llm_calls"]
    assert replayed["metrics"]["iterations"] == recorded["metrics"]["iterations"]
    assert replayed["score"] == recorded["score"] and replayed["stop_reason"] == recorded["stop_reason"]
