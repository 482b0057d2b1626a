"""Context maps: every policy says, per history turn, whether the context it built keeps the turn
whole (K), shows it transformed (M), stands in for it with a lead message (S) or drops it (D);
and episodes record one map per agent model call in result.json (`metrics.context_maps`).

The policy half is pure Python (synthetic histories); the episode half runs the toy bundle on the
local backend with the offline scripted model (no Docker)."""
from __future__ import annotations

import json
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.agents import create_agent
from evaluator.episode.context import Budget
from evaluator.jsonschemas import project_schema, violations
from evaluator.runs import RunPlan, execute
from policies import POLICIES, PolicyInput, create_policy, synthetic
from policies.base import (KIND_ACTION, KIND_OBSERVATION, KIND_STATE, KIND_SUMMARY, Message, ToolCall, count_tokens,
                           group_turns, messages_tokens)
from conftest import edited_toy, unreachable
from test_compare import TEMPLATE

ALL = sorted(POLICIES)
LEADS = (KIND_SUMMARY, KIND_STATE)


def turn_of(message: Message, turns: list[list[Message]]) -> int | None:
    """The index of the history turn an assistant message of a built context stands for."""
    numbers = {t[0].turn: i for i, t in enumerate(turns)}
    return numbers.get(message.turn) if message.role == "assistant" else None


def check_states(history: list[Message], built) -> str:
    """The properties every context map has; returns the states."""
    turns = group_turns(history)
    states = built.turn_states
    assert len(states) == len(turns), (states, len(turns))
    assert re.fullmatch(r"S*[KMD]*", states), states  # a lead stands in for a prefix, and nothing before it shows
    sent = {id(m) for m in built.messages}
    shown = {turn_of(m, turns) for m in built.messages} - {None}
    assert {i for i, s in enumerate(states) if s in "KM"} == shown, "K and M are exactly the turns shown"
    for index, state in enumerate(states):
        whole = all(id(m) in sent for m in turns[index])
        assert (state == "K") == whole, f"turn {index + 1}: {state} but {'all' if whole else 'not all'} sent as is"
    assert ("S" in states) == any(m.kind in LEADS for m in built.messages), "S exactly when a lead is sent"
    assert states.count("K") + states.count("M") == len(turns) - built.dropped_turns
    return states


def build(name: str, history: list[Message], budget_extra: int | None = None, mode: str = "agentic", **params):
    preamble = synthetic.preamble(mode)
    budget = None if budget_extra is None else messages_tokens(preamble) + budget_extra
    return create_policy(name, params).build(PolicyInput(preamble, history, budget))


# -- properties, every policy ---------------------------------------------------------------------

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(["agentic", "controller"]), turns=st.integers(0, 50), seed=st.integers(0, 10_000),
       extra=st.one_of(st.none(), st.integers(0, 10_000)), long_rate=st.sampled_from([0.0, 0.1, 0.5]))
def test_every_policy_maps_every_turn(mode, turns, seed, extra, long_rate):
    history = synthetic.history(turns, seed=seed, mode=mode, long_rate=long_rate)
    for name in ALL:
        check_states(history, build(name, history, extra, mode))


@pytest.mark.parametrize("name", ALL)
def test_maps_hold_call_after_call(name):
    """One instance per episode (summaries are cached between calls): a map at every call."""
    history = synthetic.history(30, seed=5)
    turns = group_turns(history)
    policy = create_policy(name)
    preamble = synthetic.preamble()
    for n in range(len(turns) + 1):
        prefix = [m for t in turns[:n] for m in t]
        built = policy.build(PolicyInput(preamble, prefix, messages_tokens(preamble) + 2500))
        assert len(check_states(prefix, built)) == n


# -- policy by policy ------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(turns=st.integers(0, 40), seed=st.integers(0, 1000), mode=st.sampled_from(["agentic", "controller"]))
def test_full_history_unlimited_keeps_every_turn(turns, seed, mode):
    history = synthetic.history(turns, seed=seed, mode=mode, long_rate=0.3)
    for name in ("full_history", "hard_cap_128k"):
        assert build(name, history, mode=mode).turn_states == "K" * turns


@settings(max_examples=60, deadline=None)
@given(turns=st.integers(0, 40), k=st.integers(1, 12), seed=st.integers(0, 1000),
       extra=st.one_of(st.none(), st.integers(0, 20_000)))
def test_sliding_window_keeps_the_last_k_turns_and_drops_the_rest(turns, k, seed, extra):
    history = synthetic.history(turns, seed=seed, long_rate=0.2)
    built = build("sliding_window", history, extra, k_turns=k)
    states = check_states(history, built)
    window = min(k, turns)
    last = group_turns(history)[turns - window:]
    fits = extra is None or messages_tokens([m for t in last for m in t]) + 40 <= extra
    if fits:  # the window fits with its placeholder: exactly the last k turns, whole
        assert states == "D" * (turns - window) + "K" * window
    else:  # the budget bites: older turns of the window give way first
        assert "S" not in states and re.fullmatch(r"D*[KM]*", states), states


def test_observation_masking_masks_old_long_outputs_only():
    history = synthetic.history(30, seed=8, long_rate=0.5)
    turns = group_turns(history)
    built = build("observation_masking", history, window_turns=3)
    states = check_states(history, built)
    assert states[-3:] == "KKK"
    long_old = [i for i, t in enumerate(turns[:-3]) if any(count_tokens(m.content) > 200 for m in t[1:])]
    assert long_old and all(states[i] == "M" for i in long_old)
    assert set(states[:-3]) == {"K", "M"}  # short outputs are not worth masking: those turns stay whole


def test_tool_result_clearing_below_and_above_its_threshold():
    history = synthetic.history(20, seed=4, long_rate=0.4)
    assert build("tool_result_clearing", history, threshold_tokens=10**9).turn_states == "K" * 20
    states = build("tool_result_clearing", history, threshold_tokens=0, keep_last=1).turn_states
    assert states[-1] == "K" and "M" in states and "D" not in states and "S" not in states


@pytest.mark.parametrize("name,params,kept", [("llm_summary", {"keep_last": 4, "summarize_every": 4}, 4),
                                              ("structured_state", {"keep_last": 2}, 2),
                                              ("hybrid", {"mask_window": 3, "summary_every": 5}, 3)])
def test_lead_policies_map_their_covered_prefix_to_s(name, params, kept):
    history = synthetic.history(30, seed=3)
    states = check_states(history, build(name, history, **params))
    assert states == "S" * (30 - kept) + "K" * kept


def test_a_summary_too_big_to_pay_leaves_the_turns_whole():
    history = synthetic.history(5, seed=1, long_rate=0.0)
    states = check_states(history, build("structured_state", history, keep_last=4))
    assert "S" not in states


def test_retrieval_keeps_retrieved_turns_whole():
    history = synthetic.history(30, seed=3)
    policy = create_policy("retrieval", {"top_k": 3, "keep_last": 2})
    preamble = synthetic.preamble()
    turns = group_turns(history)
    retrieved = {i for i, _ in policy.rank(PolicyInput(preamble, history), turns)}
    states = check_states(history, policy.build(PolicyInput(preamble, history)))
    assert retrieved and states == "".join("K" if i in retrieved or i >= 28 else "D" for i in range(30))


def test_packing_never_drops_the_newest_turn():
    history = synthetic.history(40, seed=2, long_rate=0.3)
    for extra in (200, 1500, 6000):
        states = check_states(history, build("token_budget_packing", history, extra))
        assert states[-1] in "KM" and "D" in states


@pytest.mark.parametrize("name", ALL)
def test_a_huge_last_output_cut_to_fit_is_m(name):
    call = ToolCall("c1", "exec", {"command": "python train.py"})
    history = [*synthetic.history(3, seed=2),
               Message("assistant", "", tool_calls=[call], kind=KIND_ACTION, turn=4),
               Message("tool", "epoch loss 0.5\n" * 20000, tool_call_id="c1", name="exec", kind=KIND_OBSERVATION,
                       turn=4, meta={"ok": True})]
    states = check_states(history, build(name, history, 2000))
    assert states[-1] == "M"


@pytest.mark.parametrize("name", ALL)
def test_an_orphan_result_is_never_k(name):
    orphan = Message("tool", "stale output " * 50, tool_call_id="gone", name="exec", kind=KIND_OBSERVATION)
    history = [orphan, *synthetic.history(3, seed=1)]
    states = build(name, history).turn_states
    assert len(states) == 4 and states[0] != "K"


# -- episodes: metrics.context_maps in result.json ---------------------------------------------------

def window_file(tmp_path, k_turns: int) -> str:
    path = tmp_path / f"window-{k_turns}.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "name": f"window-{k_turns}", "description": "k-turn window",
                                    "policy": "sliding_window", "params": {"k_turns": k_turns},
                                    "budget_tokens": None, "clarification": "neutral"}))
    return str(path)


@pytest.fixture(scope="module")
def unreachable_toy(tmp_path_factory):
    """The toy bundle with a target nobody reaches, so episodes run to their step budget."""
    return edited_toy(tmp_path_factory.mktemp("hard"), unreachable)


@pytest.mark.parametrize("mode", ["controller", "agentic"])
def test_episodes_record_one_context_map_per_agent_call(tmp_path, unreachable_toy, mode):
    agent = create_agent("model", mode=mode, policy=window_file(tmp_path, 2))
    plan = RunPlan(bundle=unreachable_toy, agent=agent, seeds=[0], backend="local", root=tmp_path, run_id=mode,
                   budget=Budget(max_steps=9))
    [result] = execute(plan, None, None)
    assert result["status"] == "completed", result["error"]
    assert violations(result, project_schema("episode_result"), "result") == []
    metrics = result["metrics"]
    maps = metrics["context_maps"]
    assert len(maps) == metrics["llm_calls"] == len(metrics["context_tokens"]) >= 4
    assert [m["call"] for m in maps] == list(range(1, len(maps) + 1))
    assert [m["tokens"] for m in maps] == metrics["context_tokens"]
    assert [m["full_tokens"] for m in maps] == metrics["full_history_tokens"]
    assert all(m["compression_ratio"] == round(m["tokens"] / m["full_tokens"], 4) for m in maps)
    first = 1 if mode == "controller" else 0  # the controller's baseline (turn 0) precedes its first call
    for number, m in enumerate(maps):
        turns = first + number  # one turn per call before it
        assert m["states"] == "D" * max(0, turns - 2) + "K" * min(turns, 2), (number, m)
    assert any("D" in m["states"] for m in maps) and maps[-1]["compression_ratio"] < 1


def test_the_schema_takes_context_maps_and_results_without_them():
    schema = project_schema("episode_result")
    result = json.loads(json.dumps(TEMPLATE))
    assert violations(result, schema, "r") == []  # an older result: no context maps at all
    record = {"call": 1, "states": "SKMD", "tokens": 10, "full_tokens": 20, "compression_ratio": 0.5}
    result["metrics"]["context_maps"] = [record]
    assert violations(result, schema, "r") == []
    for bad in ({"states": "KX"}, {"call": 0}, {"tokens": -1}, {"compression_ratio": -0.1}, {"extra": 1}):
        result["metrics"]["context_maps"] = [{**record, **bad}]
        assert violations(result, schema, "r"), bad
