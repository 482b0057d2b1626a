"""A real Phoenix server receives OpenInference spans from phoenix.otel.register and serves them back
through its REST API. Needs the Phoenix venv (scripts/phoenix_server.py install): under CI=true a
missing one fails, elsewhere the tests skip."""
from __future__ import annotations

import uuid

import pytest
from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes
from phoenix.otel import register

from conftest import IN_CI
from phoenix_support import INSTALL_HINT, PHOENIX_VENV, PHOENIX_VERSION, fetch_spans, phoenix_installed, \
    phoenix_server, wait_for_spans


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory):
    if not phoenix_installed():
        message = f"arize-phoenix=={PHOENIX_VERSION} is not installed in {PHOENIX_VENV}; run: {INSTALL_HINT}"
        if IN_CI:
            pytest.fail(message + " (scripts/setup.sh installs it)")
        pytest.skip(message)
    with phoenix_server(tmp_path_factory.mktemp("phoenix")) as server:
        yield server


def test_spans_reach_phoenix_with_parent_kind_and_attributes(phoenix):
    project = f"ctxeval-test-{uuid.uuid4().hex[:12]}"
    provider = register(endpoint=phoenix.traces_endpoint, project_name=project, batch=True,
                        set_global_tracer_provider=False, protocol="http/protobuf",
                        auto_instrument=False, verbose=False)
    tracer = provider.get_tracer("ctxeval.test")
    with tracer.start_as_current_span("episode") as parent:
        parent.set_attribute(SpanAttributes.OPENINFERENCE_SPAN_KIND, OpenInferenceSpanKindValues.CHAIN.value)
        with tracer.start_as_current_span("llm") as child:
            child.set_attribute(SpanAttributes.OPENINFERENCE_SPAN_KIND, OpenInferenceSpanKindValues.LLM.value)
            child.set_attribute(SpanAttributes.LLM_MODEL_NAME, "fake-model-1")
            child.set_attribute(SpanAttributes.LLM_TOKEN_COUNT_PROMPT, 123)
    assert provider.force_flush(timeout_millis=10_000)
    provider.shutdown()

    spans = wait_for_spans(phoenix.url, project, lambda found: len(found) >= 2, timeout=30)
    by_name = {span["name"]: span for span in spans}
    assert sorted(by_name) == ["episode", "llm"], phoenix.log_tail()
    episode, llm = by_name["episode"], by_name["llm"]

    assert episode["parent_id"] is None
    assert llm["parent_id"] == episode["span_id"]
    assert llm["trace_id"] == episode["trace_id"] == format(parent.get_span_context().trace_id, "032x")
    assert llm["span_id"] == format(child.get_span_context().span_id, "016x")
    assert episode["span_kind"] == "CHAIN"
    assert llm["span_kind"] == "LLM"
    assert llm["attributes"][SpanAttributes.LLM_MODEL_NAME] == "fake-model-1"
    assert llm["attributes"][SpanAttributes.LLM_TOKEN_COUNT_PROMPT] == 123

    # Paging with a cursor returns the same spans; filters go to the endpoint as query parameters.
    assert [s["span_id"] for s in fetch_spans(phoenix.url, project, page_size=1)] == \
        [s["span_id"] for s in spans]
    assert [s["name"] for s in fetch_spans(phoenix.url, project, span_kind="LLM")] == ["llm"]
    assert [s["name"] for s in fetch_spans(phoenix.url, project, parent_id="null")] == ["episode"]


def test_a_project_without_spans_has_none(phoenix):
    assert fetch_spans(phoenix.url, f"ctxeval-absent-{uuid.uuid4().hex[:12]}") == []


@pytest.mark.docker
def test_a_ctxeval_run_lands_in_phoenix_as_run_episode_step_llm_tool(phoenix, tmp_path):
    """A real `ctxeval run` (docker sandboxes, both modes) exports its spans to the real server."""
    import json
    import os
    import subprocess
    import sys
    from collections import Counter

    from evaluator.paths import PROJECT_ROOT

    project = f"ctxeval-run-{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "CTXEVAL_RUNS_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "evaluator", "run", "toy", "--mode", "controller", "--mode", "agentic",
                           "--policy", "short_context", "--max-parallel", "2", "--run-id", "ph",
                           "--phoenix", phoenix.url, "--phoenix-project", project],
                          capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr
    local = [json.loads(line) for line in (tmp_path / "ph" / "traces.jsonl").read_text().splitlines()]
    spans = wait_for_spans(phoenix.url, project, lambda found: len(found) >= len(local), timeout=180)
    assert Counter(s["name"] for s in spans) == Counter(s["name"] for s in local)
    by_id = {s["span_id"]: s for s in spans}
    [run] = [s for s in spans if s["name"] == "run"]
    assert run["parent_id"] is None and run["attributes"]["ctxeval.run_id"] == "ph"
    episodes = [s for s in spans if s["name"] == "episode"]
    assert len(episodes) == 2 and all(e["parent_id"] == run["span_id"] and e["span_kind"] == "AGENT" for e in episodes)
    assert {e["attributes"]["ctxeval.mode"] for e in episodes} == {"controller", "agentic"}
    steps = [s for s in spans if s["name"] == "step"]
    assert steps and all(by_id[s["parent_id"]]["name"] == "episode" for s in steps)
    llm = [s for s in spans if s["name"] == "llm"]
    tools = [s for s in spans if s["name"] == "tool"]
    assert llm and tools and all(by_id[s["parent_id"]]["name"] == "step" for s in llm + tools)
    for span in llm:
        attributes = span["attributes"]
        assert span["span_kind"] == "LLM" and attributes["llm.model_name"] in ("hill_climb", "react")
        assert attributes["llm.token_count.prompt"] > 0 and attributes["ctxeval.policy"] == "short_context"
        assert attributes["ctxeval.context_tokens"] > 0 and attributes["llm.input_messages.0.message.role"] == "system"
    assert {t["attributes"]["tool.name"] for t in tools} >= {"train_and_evaluate"}
    assert all(t["span_kind"] == "TOOL" for t in tools)
    results = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "ph" / "episodes").glob("*/result.json")}
    assert sum(s["attributes"]["llm.token_count.prompt"] for s in llm if not s["attributes"]["ctxeval.summarizer"]) \
        == sum(r["metrics"]["prompt_tokens"] for r in results.values())
