"""Every run is traced: run → episode → step → llm/tool spans with OpenInference attributes in
runs/<id>/traces.jsonl, consistent with the results; a dead or hanging collector never blocks or
fails a run; an SDK instrumentor a user switched on adds no second LLM span."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from evaluator.agents import create_agent
from evaluator.bundles import load_bundle
from evaluator.paths import BUNDLES_DIR, PROJECT_ROOT
from evaluator.runs import RunPlan, execute
from evaluator.tracing import PhoenixSettings, start_run_tracing
from evaluator.tracing.jsonl import read_spans
from fake_llm_server import OPENAI_PATH, fake_llm_server, text  # noqa: F401

CLI = [sys.executable, "-m", "evaluator"]


def cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CTXEVAL_RUNS_DIR": str(tmp_path)}
    env.pop("PHOENIX_COLLECTOR_ENDPOINT", None)
    return subprocess.run(CLI + args, capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=900)


@pytest.fixture(scope="module")
def traced_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("traced")
    proc = cli(["run", "toy", "--backend", "local", "--mode", "controller", "--mode", "agentic",
                "--policy", "sliding_window", "--seeds", "1", "--max-parallel", "2", "--run-id", "t"], root)
    assert proc.returncode == 0, proc.stderr
    run_dir = root / "t"
    results = [json.loads(p.read_text()) for p in (run_dir / "episodes").glob("*/result.json")]
    return read_spans(run_dir / "traces.jsonl"), results


def test_spans_form_run_episode_step_llm_tool(traced_run):
    spans, results = traced_run
    by_id = {s["span_id"]: s for s in spans}
    parent = {s["span_id"]: by_id[s["parent_id"]]["name"] if s["parent_id"] else None for s in spans}
    [run] = [s for s in spans if s["name"] == "run"]
    assert run["parent_id"] is None and run["kind"] == "CHAIN" and run["attributes"]["ctxeval.run_id"] == "t"
    assert {s["trace_id"] for s in spans} == {run["trace_id"]}  # one trace per run
    episodes = [s for s in spans if s["name"] == "episode"]
    assert sorted(e["attributes"]["ctxeval.episode_id"] for e in episodes) == sorted(r["episode_id"] for r in results)
    allowed = {"episode": {"run"}, "step": {"episode"}, "grade": {"episode"}, "llm": {"step"}, "tool": {"step"}}
    for span in spans:
        if span["name"] != "run":
            assert parent[span["span_id"]] in allowed[span["name"]], span["name"]
    kinds = {s["name"]: s["kind"] for s in spans}
    assert kinds == {"run": "CHAIN", "episode": "AGENT", "step": "CHAIN", "llm": "LLM", "tool": "TOOL",
                     "grade": "EVALUATOR"}


def test_span_attributes_agree_with_each_episode_result(traced_run):
    spans, results = traced_run
    by_id = {s["span_id"]: s for s in spans}

    def episode_of(span):
        while span["name"] != "episode":
            span = by_id[span["parent_id"]]
        return span["attributes"]["ctxeval.episode_id"]

    for result in results:
        mine = [s for s in spans if s["name"] in ("llm", "tool", "step", "grade") and episode_of(s) == result["episode_id"]]
        llm = [s["attributes"] for s in mine if s["name"] == "llm" and not s["attributes"]["ctxeval.summarizer"]]
        metrics = result["metrics"]
        assert len(llm) == metrics["llm_calls"] > 0
        assert sum(a["llm.token_count.prompt"] for a in llm) == metrics["prompt_tokens"]
        assert sum(a["llm.token_count.completion"] for a in llm) == metrics["completion_tokens"]
        assert [a["ctxeval.context_tokens"] for a in llm] == metrics["context_tokens"]
        for attributes in llm:
            assert attributes["llm.model_name"] == result["agent"]["model"].split(":", 1)[1]
            assert attributes["ctxeval.policy"] == "sliding_window" and attributes["ctxeval.seed"] == 0
            assert attributes["ctxeval.mode"] == result["agent"]["mode"]
            assert attributes["llm.input_messages.0.message.role"] == "system"
            assert attributes["llm.output_messages.0.message.role"] == "assistant"
        tools = [s["attributes"] for s in mine if s["name"] == "tool"]
        assert len(tools) == metrics["steps"]  # every counted action is one tool span
        assert all(json.loads(a["tool.parameters"]) is not None for a in tools)
        applied = [a for a in tools if a["tool.name"] == "train_and_evaluate"]
        assert len(applied) == len(metrics["iterations"])
        [grade] = [s["attributes"] for s in mine if s["name"] == "grade"]
        assert grade.get("ctxeval.score") == result["score"]
    agentic = next(r for r in results if r["agent"]["mode"] == "agentic")
    names = Counter(s["attributes"]["tool.name"] for s in spans if s["name"] == "tool"
                    and episode_of(s) == agentic["episode_id"])
    assert set(names) - {"train_and_evaluate"}  # agentic episodes also read, write or exec


def _hanging_listener() -> socket.socket:
    """Accepts TCP connections (backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@pytest.mark.parametrize("collector", ["closed", "hanging"])
def test_a_dead_collector_neither_blocks_nor_fails_a_run(tmp_path, collector):
    listener = _hanging_listener() if collector == "hanging" else None
    port = listener.getsockname()[1] if listener else _closed_port()
    try:
        proc = cli(["run", "toy", "--backend", "local", "--agent", "noop", "--run-id", "d",
                    "--phoenix", f"http://127.0.0.1:{port}"], tmp_path)
    finally:
        if listener:
            listener.close()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    names = Counter(s["name"] for s in read_spans(tmp_path / "d" / "traces.jsonl"))
    assert names["run"] == 1 and names["episode"] == 1  # the local trace is whole
    assert json.loads((tmp_path / "d" / "run.json").read_text())["phoenix"]["endpoint"].endswith(f":{port}/v1/traces")


def test_shutdown_gives_up_on_a_hanging_collector_within_its_grace(tmp_path):
    listener = _hanging_listener()
    try:
        settings = PhoenixSettings(f"http://127.0.0.1:{listener.getsockname()[1]}/v1/traces",
                                   export_timeout_seconds=30)
        tracing = start_run_tracing(tmp_path, settings)
        with tracing.tracing.run("r"):
            with tracing.tracing.tool("exec", {"command": "true"}) as span:
                span.finish("ok")
        finished = tracing.shutdown(grace_seconds=1)
    finally:
        listener.close()
    assert finished is False and "dropped" in tracing.warnings[0]
    assert Counter(s["name"] for s in read_spans(tmp_path / "traces.jsonl")) == {"run": 1, "step": 1, "tool": 1}


def test_an_sdk_instrumentor_adds_no_second_llm_span(tmp_path, fake_llm_server, monkeypatch):
    from openinference.instrumentation.openai import OpenAIInstrumentor
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    sdk_spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(sdk_spans))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        import openai
        fake_llm_server.enqueue(text("hello"))  # control: the instrumentor does trace a bare SDK call
        openai.OpenAI(base_url=fake_llm_server.openai_base_url).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert len(sdk_spans.get_finished_spans()) == 1
        sdk_spans.clear()

        fake_llm_server.enqueue(text(json.dumps({"config": {"model": "random_forest"}})),
                                text(json.dumps({"config": {"model": "random_forest"}, "stop": True})))
        agent = create_agent("model", model="openai:gpt-4o", mode="controller", policy="full_history",
                             base_url=fake_llm_server.openai_base_url)
        plan = RunPlan(bundle=load_bundle(BUNDLES_DIR / "toy"), agent=agent, seeds=[0], backend="local",
                       root=tmp_path, run_id="oi")
        [result] = execute(plan, None, None)
    finally:
        instrumentor.uninstrument()
    assert result["status"] == "completed", result["error"]
    calls = len(fake_llm_server.requests_to(OPENAI_PATH)) - 1
    ours = [s for s in read_spans(plan.run_dir / "traces.jsonl") if s["name"] == "llm"]
    assert calls >= 1 and len(ours) == calls == result["metrics"]["llm_calls"]
    assert sdk_spans.get_finished_spans() == ()  # suppressed inside ctxeval's llm span


def test_an_llm_span_keeps_every_message_of_a_long_context(tmp_path):
    """OpenTelemetry's default limit (128 attributes) would drop the oldest messages of a long
    context: the run's provider keeps all of them."""
    from policies.base import Message
    messages = [Message("user" if i % 2 else "assistant", f"turn {i}") for i in range(200)]
    tracing = start_run_tracing(tmp_path)
    with tracing.tracing.run("r"), tracing.tracing.llm("scripted:hill_climb", messages):
        pass
    assert tracing.shutdown(grace_seconds=5)
    (llm,) = [s for s in read_spans(tmp_path / "traces.jsonl") if s["name"] == "llm"]
    contents = [llm["attributes"].get(f"llm.input_messages.{i}.message.content") for i in range(200)]
    assert contents == [f"turn {i}" for i in range(200)]
