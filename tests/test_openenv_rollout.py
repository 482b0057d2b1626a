"""OpenEnv's own rollout loop drives a ctxeval bundle (the real `openenv` package from PyPI, the
`rl` extra): `build_harness_rollout_func` with OpenEnv's `MCPHarnessAdapter` and OpenEnv's
`OpenAIClient` talking to a local OpenAI-compatible server that scripts the model's tool calls.
The model's tool calls are the actions, the graded score is the reward, and the context policy
decides what the model is sent (the server records every request)."""
from __future__ import annotations

import asyncio
import json

import pytest
from fake_llm_server import OPENAI_PATH, FakeLLMServer, tool_call
from openenv.core.harness import HarnessRunLimits, MCPHarnessAdapter, ModelStepResult, build_harness_rollout_func
from openenv.core.llm_client import OpenAIClient

from evaluator.rl.openenv_session import BundleSessionFactory, from_openai_messages, policy_messages, with_policy
from policies.config import PolicyConfig

pytestmark = pytest.mark.docker

CALLS = [("exec", {"command": "cat config.json"}),
         ("train_and_evaluate", {"config": {"model": "logistic_regression", "C": 0.5}}),
         ("train_and_evaluate", {"config": {"model": "hist_gradient_boosting"}}),
         ("submit", {"summary": "the boosted trees"})]
ONE_TURN_WINDOW = PolicyConfig(name="window-1", policy="sliding_window", params={"k_turns": 1})


@pytest.fixture(scope="module")
def factory(toy_bundle, toy_image, docker_client):
    made = BundleSessionFactory(toy_bundle, image=toy_image.tag, client=docker_client)
    yield made
    made.close()


def openai_model_step(server: FakeLLMServer, loop: asyncio.AbstractEventLoop):
    client = OpenAIClient(server.openai_base_url, None, model="scripted-policy", api_key="sk-test")

    def step(messages, tools, sampling):
        response = loop.run_until_complete(client.complete_with_tools(messages, [t.model_dump() for t in tools]))
        return ModelStepResult(response=response)
    return step


def rollout(factory, policy, prompts=("toy",)):
    loop = asyncio.new_event_loop()
    try:
        with FakeLLMServer() as server:
            for _ in prompts:
                server.enqueue(*(tool_call(name, args) for name, args in CALLS))
            step = openai_model_step(server, loop)
            builder = (lambda trainer, session: step) if policy is None else \
                (lambda trainer, session: with_policy(step, policy))
            rollout_func = build_harness_rollout_func(session_factory=factory, harness_adapter=MCPHarnessAdapter(),
                                                      model_step_builder=builder, limits=HarnessRunLimits(max_turns=10))
            result = rollout_func(list(prompts), None)
            sent = [r.body for r in server.requests_to(OPENAI_PATH)]
    finally:
        loop.close()
    return result, sent


def test_openenvs_loop_plays_the_episode_and_the_graded_score_is_the_reward(factory, toy_bundle):
    result, sent = rollout(factory, policy=None)
    [reward], [metrics] = result["env_reward"], result["verify_metrics"]
    assert metrics["stop_reason"] == "submitted" and metrics["steps"] == len(CALLS)
    assert reward == metrics["score"] and toy_bundle.target.meets_target(reward) and metrics["success"] is True
    assert len(sent) == len(CALLS)
    offered = {t["function"]["name"] for t in sent[0]["tools"]}
    assert {"exec", "submit", "train_and_evaluate"} <= offered
    last = sent[-1]["messages"]  # full history: every earlier call and answer
    answers = [m["content"] for m in last if m["role"] == "tool"]
    assert len(answers) == 3 and '"model": "logistic_regression"' in answers[0] and '"cv_accuracy"' in answers[2]


def test_the_context_policy_decides_what_the_model_is_sent(factory, toy_bundle):
    result, sent = rollout(factory, policy=ONE_TURN_WINDOW)
    assert result["verify_metrics"][0]["stop_reason"] == "submitted" and result["env_reward"][0] > 0
    last = sent[-1]["messages"]
    assert last[0]["role"] == "system" and toy_bundle.task_text in last[1]["content"]  # the preamble is kept
    answers = [m["content"] for m in last if m["role"] == "tool"]
    assert len(answers) == 1 and '"hist_gradient_boosting"' in answers[0]  # only the last turn, in full
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"]))
             for m in last for c in m.get("tool_calls") or []]
    assert calls == [CALLS[2]]  # the older turns' calls are gone from what was sent
    full = sum(len(m.get("tool_calls") or []) for m in sent[-2]["messages"])
    assert full == 1  # and the turn before saw only its own predecessor too


def test_sessions_reuse_warm_environments_and_start_clean(factory):
    before = len(factory.made)
    result, _ = rollout(factory, policy=None, prompts=("a", "b"))
    assert len(result["env_reward"]) == 2 and all(m["success"] for m in result["verify_metrics"])
    assert len(factory.made) == max(before, 1)  # one after the other: one warm container serves both


def test_a_rollout_that_stops_before_submit_is_graded_as_it_stands(factory):
    session = factory.create(task="toy")
    try:
        session.call_tool("exec", {"command": "true"})
        verified = session.verify(transcript=[])
    finally:
        session.close()
    assert verified.done and verified.metrics["stop_reason"] == "submitted"
    assert verified.env_reward == 0.0 and verified.metrics["success"] is False  # nothing written: graded invalid


def test_transcripts_convert_to_ctxeval_messages_and_back():
    wire = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "exec", "arguments": '{"command": "ls"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "name": "exec", "content": "a.txt\n" * 200},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c2", "type": "function", "function": {"name": "exec", "arguments": '{"command": "pwd"}'}}]},
            {"role": "tool", "tool_call_id": "c2", "name": "exec", "content": "/workspace"}]
    messages = from_openai_messages(wire)
    assert [m.turn for m in messages[2:]] == [1, 1, 2, 2] and messages[2].tool_calls[0].arguments == {"command": "ls"}
    kept = policy_messages(wire, ONE_TURN_WINDOW.create())
    assert kept[:2] == wire[:2]
    assert kept[-2]["tool_calls"][0]["id"] == "c2" and kept[-1] == {"role": "tool", "tool_call_id": "c2",
                                                                      "content": "/workspace"}
    assert "a.txt" not in json.dumps(kept) and "c1" not in json.dumps(kept)  # turn 1 is no longer sent
