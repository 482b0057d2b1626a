"""Context policies: the invariants every policy honours, each policy's behaviour, presets.

Pure Python and fast: synthetic histories (policies/synthetic.py), no Docker, no network."""
from __future__ import annotations

import json
import random

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import (POLICIES, BudgetTooSmall, PolicyConfig, PolicyInput, PresetError, SummarizerResult,
                      create_policy, list_policies, list_presets, resolve_policy, synthetic)
from policies.base import (KIND_ACTION, KIND_OBSERVATION, KIND_PLACEHOLDER, KIND_STATE, KIND_SUMMARY, Message,
                           ToolCall, count_tokens, group_turns, messages_tokens)
from policies.config import PRESETS_DIR
from policies.preset_files import SCHEMA_PATH
from policies.structured_state import StructuredState, extract_state

PH = "[ctxeval:"
MARKER_KINDS = (KIND_PLACEHOLDER, KIND_SUMMARY, KIND_STATE)


def word_counter(text: str) -> int:
    """A second tokenizer, so policies are checked to count with the request's counter."""
    return len(text.split()) + text.count("{") + 1


def own_budget(policy) -> int | None:
    params = policy.params()
    return params.get("cap_tokens", params.get("budget_tokens"))


def check_invariants(request: PolicyInput, built, policy=None) -> None:
    """(a) preamble whole and first; (b) calls and results together; (c) placeholders for what is
    missing or replaced; (d) within budget; (e) never more than full history."""
    messages, preamble, counter = built.messages, request.preamble, request.counter
    # (a)
    assert len(messages) >= len(preamble)
    assert messages[:len(preamble)] == preamble, "the preamble must come first, whole and in order"
    body = messages[len(preamble):]
    turns = group_turns(request.history)
    by_number = {t[0].turn: (i, t) for i, t in enumerate(turns)}
    kept: list[tuple[int, bool]] = []  # (turn index, a marker came since the previous kept turn)
    marker, position = False, 0
    while position < len(body):
        message = body[position]
        if message.role == "assistant":
            index, turn = by_number[message.turn]
            original = turn[0]
            assert message.tool_calls == original.tool_calls, "tool calls are never rewritten"
            assert message.content == original.content or PH in message.content
            answers = turn[1:]
            got = body[position + 1:position + 1 + len(answers)]
            # (b) every answer kept right after its call, same role / id / name, in order
            assert len(got) == len(answers), f"turn {index + 1}: its results must follow its call"
            for new, old in zip(got, answers):
                assert (new.role, new.tool_call_id, new.name) == (old.role, old.tool_call_id, old.name)
                assert new.content == old.content or PH in new.content, "replaced content needs a placeholder"
            ids = {c.id for c in message.tool_calls}
            assert {m.tool_call_id for m in got if m.role == "tool"} <= ids
            kept.append((index, marker))
            marker = False
            position += 1 + len(answers)
        else:
            # (b) nothing else may stand alone: no tool message, no observation without its action
            assert message.role == "user" and message.kind in MARKER_KINDS, \
                f"unexpected {message.role}/{message.kind} message outside a turn"
            assert PH in message.content
            marker = True
            position += 1
    indices = [i for i, _ in kept]
    assert indices == sorted(set(indices)), "turns are emitted once each, in chronological order"
    # (d)
    tokens = messages_tokens(messages, counter)
    assert built.tokens == tokens
    # (e) a policy never sends more than the full history would (stand-ins are smaller than what they replace)
    assert tokens <= built.full_tokens, f"{tokens} tokens, more than full history's {built.full_tokens}"
    budgets = [b for b in (request.budget_tokens, own_budget(policy) if policy else None) if b is not None]
    if budgets:
        assert tokens <= min(budgets), f"{tokens} tokens over the budget {min(budgets)}"
    # (c) every gap is marked, when the budget leaves room for the smallest marker
    smallest = messages_tokens([Message("user", "[ctxeval: 999 turns omitted]")], counter)
    room = (min(budgets) if budgets else None)
    if room is None or room - messages_tokens(preamble, counter) >= smallest:
        previous = -1
        for index, seen in kept:
            if index != previous + 1:
                assert seen, f"turns {previous + 2}-{index} are missing without a placeholder"
            previous = index
        if previous != len(turns) - 1:
            assert marker, "the newest turns are missing without a placeholder"
    assert built.dropped_turns == len(turns) - len(kept)
    assert len(built.turn_states) == len(turns)  # the context map: one state per history turn


def build_checked(name: str, request: PolicyInput, policy=None):
    policy = policy or create_policy(name)
    built = policy.build(request)
    check_invariants(request, built, policy)
    return built


# -- synthetic histories ----------------------------------------------------------------------------

def test_synthetic_histories_are_seeded_and_well_formed():
    for mode in ("agentic", "controller"):
        assert synthetic.history(30, seed=3, mode=mode) == synthetic.history(30, seed=3, mode=mode)
        assert synthetic.history(30, seed=3, mode=mode) != synthetic.history(30, seed=4, mode=mode)
        for n in (0, 1, 7, 60):
            turns = group_turns(synthetic.history(n, seed=n, mode=mode))
            assert len(turns) == n
            for turn in turns:
                assert turn[0].role == "assistant" and turn[0].kind == KIND_ACTION
                if mode == "agentic" and turn[0].tool_calls:
                    assert [m.tool_call_id for m in turn[1:]] == [c.id for c in turn[0].tool_calls]
                elif mode == "agentic":
                    assert [(m.role, m.kind) for m in turn[1:]] == [("user", KIND_OBSERVATION)]
                else:
                    assert turn[1].content.startswith("RESULT:") and turn[1].kind == KIND_OBSERVATION
    history = synthetic.history(120, seed=1)
    tools = {c.name for m in history for c in m.tool_calls}
    assert any(m.role == "assistant" and not m.tool_calls for m in history)
    assert any(isinstance(c.arguments, str) for m in history for c in m.tool_calls)
    assert {"train_and_evaluate", "exec", "read_file", "clarify"} <= tools
    assert any(m.meta.get("ok") is False for m in history)
    assert any(isinstance(m.meta.get("score"), float) for m in history)
    assert max(count_tokens(m.content) for m in history) > 1500  # some long outputs


# -- invariants, every policy --------------------------------------------------------------------

ALL = sorted(POLICIES)
HISTORIES = [("agentic", 0, 0), ("agentic", 1, 1), ("agentic", 9, 2), ("agentic", 60, 3),
             ("controller", 0, 4), ("controller", 5, 5), ("controller", 60, 6)]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("mode,turns,seed", HISTORIES)
def test_invariants_for_every_policy(name, mode, turns, seed):
    preamble, history = synthetic.episode(turns, seed=seed, mode=mode)
    base = messages_tokens(preamble)
    for budget in (None, base, base + 12, base + 150, base + 800, base + 3000, 20000):
        for counter in (count_tokens, word_counter):
            if counter is word_counter and budget is not None and budget < messages_tokens(preamble, counter):
                continue
            build_checked(name, PolicyInput(preamble, history, budget, counter=counter))


@pytest.mark.parametrize("name", ALL)
def test_invariants_hold_call_after_call(name):
    """One instance per episode, called as the history grows (stateful policies cache things)."""
    for mode in ("agentic", "controller"):
        preamble, history = synthetic.episode(40, seed=11, mode=mode)
        turns = group_turns(history)
        for budget in (None, messages_tokens(preamble) + 1500):
            policy = create_policy(name)
            for n in range(len(turns) + 1):
                prefix = [m for t in turns[:n] for m in t]
                build_checked(name, PolicyInput(preamble, prefix, budget), policy)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(["agentic", "controller"]), turns=st.integers(0, 60), seed=st.integers(0, 10_000),
       extra=st.one_of(st.none(), st.integers(0, 12_000)), long_rate=st.sampled_from([0.0, 0.1, 0.5]))
def test_invariants_random_histories(mode, turns, seed, extra, long_rate):
    preamble = synthetic.preamble(mode)
    history = synthetic.history(turns, seed=seed, mode=mode, long_rate=long_rate)
    budget = None if extra is None else messages_tokens(preamble) + extra
    for name in ALL:
        build_checked(name, PolicyInput(preamble, history, budget))


@pytest.mark.parametrize("name", ALL)
def test_a_huge_last_output_is_cut_not_dropped(name):
    preamble = synthetic.preamble()
    call = ToolCall("c1", "exec", {"command": "python train.py"})
    history = [*synthetic.history(3, seed=2),
               Message("assistant", "", tool_calls=[call], kind=KIND_ACTION, turn=4),
               Message("tool", "epoch loss 0.5\n" * 20000 + "FINAL_SCORE 0.91", tool_call_id="c1", name="exec",
                       kind=KIND_OBSERVATION, turn=4, meta={"ok": True})]
    budget = messages_tokens(preamble) + 2000
    built = build_checked(name, PolicyInput(preamble, history, budget))
    last = built.messages[-1]
    assert last.role == "tool" and last.tool_call_id == "c1"
    assert "FINAL_SCORE 0.91" in last.content and "truncated by the context policy" in last.content


@pytest.mark.parametrize("name", ALL)
def test_preamble_over_budget_is_refused(name):
    preamble, history = synthetic.episode(5, seed=1)
    with pytest.raises(BudgetTooSmall):
        create_policy(name).build(PolicyInput(preamble, history, messages_tokens(preamble) - 1))


def test_an_orphan_tool_result_is_never_sent():
    preamble = synthetic.preamble()
    orphan = Message("tool", "stale output", tool_call_id="gone", name="exec", kind=KIND_OBSERVATION)
    history = [orphan, *synthetic.history(3, seed=1)]
    for name in ALL:
        built = create_policy(name).build(PolicyInput(preamble, history))
        assert all(m.tool_call_id != "gone" for m in built.messages), name


# -- behaviour, policy by policy ------------------------------------------------------------------

def tokens_of(name: str, preamble, history, budget=None, **params) -> int:
    return create_policy(name, params).build(PolicyInput(preamble, history, budget)).tokens


def test_sliding_window_stays_flat_while_full_history_grows():
    preamble = synthetic.preamble("controller")
    sizes = {n: (tokens_of("sliding_window", preamble, synthetic.history(n, seed=5, mode="controller")),
                 tokens_of("full_history", preamble, synthetic.history(n, seed=5, mode="controller")))
             for n in (10, 20, 40, 60)}
    window = [s for s, _ in sizes.values()]
    full = [f for _, f in sizes.values()]
    assert max(window) - min(window) <= 0.15 * min(window)
    assert full == sorted(full) and full[-1] > 3 * full[0]
    built = create_policy("sliding_window", {"k_turns": 6}).build(
        PolicyInput(preamble, synthetic.history(60, seed=5, mode="controller")))
    assert sum(m.role == "assistant" for m in built.messages) == 6
    assert built.dropped_turns == 54
    assert any(m.kind == KIND_PLACEHOLDER and "54 turns" in m.content for m in built.messages)


def test_observation_masking_replaces_only_old_outputs():
    preamble = synthetic.preamble()
    history = synthetic.history(10, seed=8, long_rate=0.5)
    turns = group_turns(history)
    built = create_policy("observation_masking", {"window_turns": 3}).build(PolicyInput(preamble, history))
    body = built.messages[len(preamble):]
    assert len(body) == len(history)  # nothing dropped: same messages, same order
    for old, new in zip(history, body):
        assert (old.role, old.tool_call_id, old.name, old.kind, old.turn) == \
            (new.role, new.tool_call_id, new.name, new.kind, new.turn)
        if old.role == "assistant":
            assert new is old
        elif old.turn <= turns[-4][0].turn:
            what = f"tool result of {old.name}" if old.role == "tool" else "observation"
            text = f"[ctxeval: {what} masked by the context policy: ~{count_tokens(old.content)} tokens]"
            if count_tokens(text) < count_tokens(old.content):
                assert new.content == text and "score" not in new.meta
            else:  # hiding an output shorter than its placeholder would cost tokens
                assert new is old
        else:
            assert new is old
    assert sum(m.content.startswith("[ctxeval:") for m in body) >= 5


def test_tool_result_clearing_keeps_the_last_results():
    preamble = synthetic.preamble()
    history = synthetic.history(30, seed=9, long_rate=0.3)
    outputs = [m for m in history if m.role == "tool"]
    full = messages_tokens([*preamble, *history])
    built = create_policy("tool_result_clearing", {"threshold_tokens": full - 1, "keep_last": 3}).build(
        PolicyInput(preamble, history))
    results = [m for m in built.messages if m.role == "tool"]
    assert [m.tool_call_id for m in results] == [m.tool_call_id for m in outputs]
    assert results[-3:] == outputs[-3:]
    for new, old in zip(results[:-3], outputs[:-3]):
        if count_tokens(old.content) > 30:
            assert new.content.startswith(f"[ctxeval: tool result of {old.name} cleared by the context policy")
        else:
            assert new is old or "cleared" in new.content
    assert sum("cleared" in m.content for m in results) > 10
    untouched = create_policy("tool_result_clearing", {"threshold_tokens": full, "keep_last": 3}).build(
        PolicyInput(preamble, history))
    assert untouched.messages == [*preamble, *history]


class CountingSummarizer:
    def __init__(self):
        self.calls: list[list[Message]] = []

    def __call__(self, messages: list[Message]) -> SummarizerResult:
        self.calls.append(messages)
        text = f"SUMMARY#{len(self.calls)} of {len(group_turns(messages))} blocks"
        return SummarizerResult(text, 100 + len(messages), 7)


@pytest.mark.parametrize("name,keep,every", [("llm_summary", 4, 4), ("hybrid", 3, 5)])
def test_summary_is_refreshed_every_n_turns_and_billed(name, keep, every):
    params = {"keep_last": keep, "summarize_every": every} if name == "llm_summary" else \
        {"mask_window": keep, "summary_every": every}
    preamble = synthetic.preamble()
    turns = group_turns(synthetic.history(30, seed=4))
    summarizer = CountingSummarizer()
    policy = create_policy(name, params)
    refreshed_at = []
    for n in range(31):
        history = [m for t in turns[:n] for m in t]
        request = PolicyInput(preamble, history, summarizer=summarizer)
        built = policy.build(request)
        check_invariants(request, built, policy)
        if built.summarizer_calls:
            refreshed_at.append(n)
            assert [(c.prompt_tokens, c.completion_tokens) for c in built.summarizer_calls] == \
                [(100 + len(summarizer.calls[-1]), 7)]
        summaries = [m for m in built.messages if m.kind == KIND_SUMMARY]
        if n >= keep + every:
            assert len(summaries) == 1 and f"SUMMARY#{len(summarizer.calls)} " in summaries[0].content
        else:
            assert not summaries
    assert refreshed_at == list(range(keep + every, 31, every))
    assert len(summarizer.calls) == len(refreshed_at)
    # the rolling input: the previous summary, then only the turns that fell out since
    second = summarizer.calls[1]
    assert second[0].kind == KIND_SUMMARY and "SUMMARY#1" in second[0].content
    assert len(group_turns(second[1:])) == every
    # the same history again: no new call
    again = policy.build(PolicyInput(preamble, [m for t in turns for m in t], summarizer=summarizer))
    assert not again.summarizer_calls


def test_summary_offline_is_extractive_and_still_billed():
    preamble = synthetic.preamble()
    history = synthetic.history(20, seed=12)
    built = create_policy("llm_summary").build(PolicyInput(preamble, history))
    assert len(built.summarizer_calls) == 1
    call = built.summarizer_calls[0]
    assert call.prompt_tokens > 0 and call.completion_tokens == count_tokens(call.text)
    summary = next(m for m in built.messages if m.kind == KIND_SUMMARY)
    assert "turns 1-16" in summary.content and "- turn 16:" in summary.content
    for m in history:  # every summarised score is in the summary
        if m.turn <= 16 and isinstance(m.meta.get("score"), float):
            assert f"score={m.meta['score']:.6g}" in summary.content


def test_summary_cache_resets_for_another_history():
    preamble = synthetic.preamble()
    policy = create_policy("llm_summary", {"keep_last": 2, "summarize_every": 2})
    first = policy.build(PolicyInput(preamble, synthetic.history(12, seed=1)))
    second = policy.build(PolicyInput(preamble, synthetic.history(12, seed=2)))
    assert first.summarizer_calls and second.summarizer_calls  # not the stale summary of seed 1


def _train_turn(turn: int, config: dict, score: float | None = None, error: str | None = None) -> list[Message]:
    call = ToolCall(f"t{turn}", "train_and_evaluate", {"config": config})
    log = "\n".join(f"epoch {i} | train_loss {1 / (i + 1):.4f} | val_loss {1.1 / (i + 1):.4f}" for i in range(8))
    if error:
        result = Message("tool", f"{log}\nERROR: {error}", tool_call_id=call.id, name=call.name,
                         kind=KIND_OBSERVATION, turn=turn, meta={"ok": False, "tool": call.name, "error": error})
    else:
        result = Message("tool", json.dumps({"ok": True, "output": {"score": score}}) + "\n" + log,
                         tool_call_id=call.id, name=call.name, kind=KIND_OBSERVATION, turn=turn,
                         meta={"ok": True, "tool": call.name, "score": score, "config": config})
    return [Message("assistant", "", tool_calls=[call], kind=KIND_ACTION, turn=turn), result]


def _clarify_turn(turn: int, question: str, answer: str | None) -> list[Message]:
    call = ToolCall(f"q{turn}", "clarify", {"question": question})
    meta = {"ok": True, "tool": "clarify", "question": question, **({} if answer else {"answered": False})}
    return [Message("assistant", "", tool_calls=[call], kind=KIND_ACTION, turn=turn),
            Message("tool", answer or "", tool_call_id=call.id, name="clarify", kind=KIND_OBSERVATION, turn=turn,
                    meta=meta)]


def test_structured_state_reports_best_config_errors_and_open_questions():
    history = [*_train_turn(1, {"depth": 3}, 0.71), *_train_turn(2, {"depth": 9}, 0.93),
               *_train_turn(3, {"depth": 0}, error="ValueError: depth must be positive (boom-4417)"),
               *_clarify_turn(4, "Is the metric macro F1?", None),
               *_clarify_turn(5, "Which split is the test set?", "test.csv, held out"),
               *_clarify_turn(6, "Is there a time limit?", None),
               *_train_turn(7, {"depth": 5}, 0.88), *_train_turn(8, {"depth": 4}, 0.80)]
    # the evaluator's clarifier answers "No matching fact ..." when it has nothing: not an answer
    history[11] = Message("tool", "No matching fact in the dataset context. Known topics: metric, output",
                          tool_call_id="q6", name="clarify", kind=KIND_OBSERVATION, turn=6,
                          meta={"ok": True, "tool": "clarify", "question": "Is there a time limit?"})
    preamble = synthetic.preamble()
    request = PolicyInput(preamble, history)
    state = extract_state(request)
    assert state.best is not None and state.best.score == 0.93 and state.best.config == {"depth": 9}
    assert [e.message for e in state.errors] == ["ValueError: depth must be positive (boom-4417)"]
    assert state.open_questions == ["Is the metric macro F1?", "Is there a time limit?"]
    assert state.clarifications == [("Which split is the test set?", "test.csv, held out")]
    assert len(state.trials) == 5 and state.failed_trials == 1 and state.tool_calls["train_and_evaluate"] == 5
    policy = StructuredState(keep_last=2)
    built = policy.build(request)
    check_invariants(request, built, policy)
    text = next(m for m in built.messages if m.kind == KIND_STATE).content
    assert 'Best so far: score=0.93 (turn 2' in text and '{"depth":9}' in text
    assert "boom-4417" in text and "Is the metric macro F1?" in text
    assert [m.turn for m in built.messages if m.role == "assistant"] == [7, 8]
    # lower is better: the direction comes from the task's target line
    low = extract_state(PolicyInput(synthetic.preamble(direction="minimize"), history))
    assert low.best.score == 0.71


def test_structured_state_reads_controller_results():
    preamble = synthetic.preamble("controller")
    history = synthetic.history(25, seed=3, mode="controller")
    state = extract_state(PolicyInput(preamble, history))
    scores = [json.loads(m.content[len("RESULT:"):]).get("score") for m in history if m.content.startswith("RESULT:")]
    scores = [s for s in scores if s is not None]
    assert state.best.score == max(scores)
    assert state.failed_trials == sum(1 for m in history if m.kind == KIND_OBSERVATION and m.meta.get("ok") is False
                                      and "config" in m.meta)


def test_stand_ins_never_cost_more_than_what_they_replace():
    preamble = synthetic.preamble("controller")
    turns = group_turns(synthetic.history(40, seed=2, mode="controller"))
    policy = StructuredState(keep_last=2)
    shown_state = []
    for n in range(3, 41):
        request = PolicyInput(preamble, [m for t in turns[:n] for m in t])
        built = policy.build(request)
        check_invariants(request, built, policy)
        shown_state.append(any(m.kind == KIND_STATE for m in built.messages))
    assert not shown_state[0] and shown_state[-1]  # the record replaces turns once it is the smaller
    assert shown_state == sorted(shown_state)
    tiny = [Message("assistant", "", tool_calls=[ToolCall("w1", "write_file", {"path": "a", "content": "b"})],
                    kind=KIND_ACTION, turn=1),
            Message("tool", "wrote a", tool_call_id="w1", name="write_file", kind=KIND_OBSERVATION, turn=1)]
    later = synthetic.history(6, seed=3)
    for m in later:  # fresh messages: renumber them after the tiny first turn
        m.turn += 1
    history = [*tiny, *later]
    built = create_policy("observation_masking", {"window_turns": 1}).build(PolicyInput(preamble, history))
    assert built.messages[len(preamble) + 1] is tiny[1]  # "wrote a" is cheaper than its placeholder


def test_retrieval_brings_back_the_matching_old_turn():
    preamble = synthetic.preamble()
    turns = group_turns(synthetic.history(30, seed=21))
    needle = "CUDA_ERROR_ILLEGAL_ADDRESS_7731"
    old = turns[4]
    turns[4] = [old[0], *[Message(m.role, f"{m.content}\nRuntimeError: {needle} in kernel", tool_call_id=m.tool_call_id,
                                  name=m.name, kind=m.kind, turn=m.turn, meta=m.meta) for m in old[1:]]]
    call = ToolCall("c31", "exec", {"command": "python train.py"})
    last = [Message("assistant", f"That {needle} again? Retrying with a smaller batch.", tool_calls=[call],
                    kind=KIND_ACTION, turn=31),
            Message("tool", f"exit code 1\nstderr: {needle}", tool_call_id="c31", name="exec",
                    kind=KIND_OBSERVATION, turn=31, meta={"ok": False})]
    history = [m for t in [*turns, last] for m in t]
    policy = create_policy("retrieval", {"top_k": 3, "keep_last": 1})
    request = PolicyInput(preamble, history)
    built = policy.build(request)
    check_invariants(request, built, policy)
    shown = [m.turn for m in built.messages if m.role == "assistant"]
    assert 5 in shown and shown[-1] == 31 and len(shown) <= 4
    assert shown == sorted(shown)
    assert policy.rank(request, group_turns(history))[0][0] == 4
    # the extension point: any scorer (documents, query) -> scores
    pick_third = create_policy("retrieval", {"top_k": 1,
                                             "scorer": lambda docs, query: [float(i == 2) for i in range(len(docs))]})
    assert [m.turn for m in pick_third.build(request).messages if m.role == "assistant"] == [3, 31]
    by_path = create_policy("retrieval", {"scorer": "policies.retrieval:bm25_scores"})
    assert by_path.params()["scorer"] == "policies.retrieval:bm25_scores"
    with pytest.raises(ValueError, match="scorer"):
        create_policy("retrieval", {"scorer": "no.such.module:fn"})


def test_packing_prefers_best_score_and_error_turns():
    rng = random.Random(3)
    history = []
    for turn in range(1, 41):
        if turn == 3:
            history += _train_turn(turn, {"depth": 7}, 0.99)
        elif turn == 8:
            history += _train_turn(turn, {"depth": 0}, error="ValueError: depth 0 (packing-err-55)")
        else:
            config = {"depth": rng.randint(1, 6), "pad": "x" * 200}
            history += _train_turn(turn, config, round(rng.uniform(0.5, 0.6), 3))
    preamble = synthetic.preamble()
    per_turn = messages_tokens(_train_turn(9, {"depth": 1, "pad": "x" * 200}, 0.55))
    budget = messages_tokens(preamble) + 10 * per_turn
    policy = create_policy("token_budget_packing", {"budget_tokens": budget})
    request = PolicyInput(preamble, history)
    built = policy.build(request)
    check_invariants(request, built, policy)
    shown = [m.turn for m in built.messages if m.role == "assistant"]
    assert 3 in shown and 8 in shown and 40 in shown
    scores = {m.turn: m.meta["score"] for m in history if m.meta.get("score") is not None}
    top3 = sorted(scores, key=lambda t: -scores[t])[:3]
    assert top3[0] == 3
    # middle-aged turns go first, unless among the best scores
    assert all(t in top3 for t in shown if 12 <= t < 30), (shown, top3)
    assert {36, 37, 38, 39, 40} <= set(shown)  # recency counts too
    assert shown == sorted(shown)


def test_hard_cap_8k_never_exceeds_8000_tokens():
    preamble = synthetic.preamble()
    for seed in range(3):
        history = synthetic.history(200, seed=seed, long_rate=0.3)
        assert messages_tokens([*preamble, *history]) > 40000
        policy = create_policy("hard_cap_8k")
        for budget in (None, 100_000, 5000):
            request = PolicyInput(preamble, history, budget)
            built = policy.build(request)
            check_invariants(request, built, policy)
            assert built.tokens <= min(8000, budget or 8000)
            assert built.tokens > min(8000, budget or 8000) * 0.5  # a cap, not a window
    assert create_policy("hard_cap_128k").params() == {"cap_tokens": 128000}
    with pytest.raises(BudgetTooSmall):
        create_policy("hard_cap", {"cap_tokens": 10}).build(PolicyInput(preamble, []))


def test_full_history_is_everything_without_a_budget():
    preamble, history = synthetic.episode(25, seed=2)
    built = create_policy("full_history").build(PolicyInput(preamble, history))
    assert built.messages == [*preamble, *history] and built.tokens == built.full_tokens
    assert built.dropped_turns == 0


# -- registry, presets, resolution ------------------------------------------------------------------

def test_registry_lists_named_parameters_and_descriptions():
    listed = {name: (description, params) for name, description, params in list_policies()}
    assert set(listed) == set(POLICIES) >= {"full_history", "sliding_window", "observation_masking",
                                            "tool_result_clearing", "llm_summary", "structured_state", "retrieval",
                                            "hybrid", "token_budget_packing", "hard_cap", "hard_cap_8k",
                                            "hard_cap_32k", "hard_cap_128k"}
    assert listed["sliding_window"][1] == {"k_turns": 6}
    assert listed["observation_masking"][1] == {"window_turns": 3}
    assert listed["tool_result_clearing"][1] == {"threshold_tokens": 8000, "keep_last": 3}
    assert listed["llm_summary"][1] == {"keep_last": 4, "summarize_every": 4}
    assert listed["structured_state"][1] == {"keep_last": 2}
    assert listed["retrieval"][1] == {"top_k": 4, "keep_last": 1, "scorer": "bm25"}
    assert listed["hybrid"][1] == {"mask_window": 3, "summary_every": 5}
    assert listed["token_budget_packing"][1] == {"budget_tokens": 8000}
    assert listed["hard_cap"][1] == {"cap_tokens": 32000}
    for name, (description, params) in listed.items():
        assert description and "\n" not in description
        assert create_policy(name).params() == params
        assert POLICIES[name].name == name


def test_create_policy_rejects_bad_parameters():
    with pytest.raises(ValueError, match="k_turn"):
        create_policy("sliding_window", {"k_turn": 3})
    with pytest.raises(ValueError, match="k_turns"):
        create_policy("sliding_window", {"k_turns": 0})
    with pytest.raises(ValueError, match="unknown context policy 'nope'.*sliding_window"):
        create_policy("nope")


def test_presets_validate_and_resolve():
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    names = []
    for path in sorted(PRESETS_DIR.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        assert not list(Draft202012Validator(schema).iter_errors(document)), path
        assert document["name"] == path.stem
        names.append(path.stem)
    assert {"short_context", "long_context"} <= set(names)
    assert not set(names) & set(POLICIES), "preset names must not shadow policy names"
    assert [c.name for c in list_presets()] == names

    short = resolve_policy("short_context")
    assert (short.policy, short.budget_tokens, short.clarification, short.source) == \
        ("retrieval", 4000, "encourage", "preset")
    assert short.params["top_k"] == 3
    long = resolve_policy("long_context")
    assert (long.policy, long.budget_tokens, long.clarification) == ("full_history", 128000, "discourage")
    described = short.describe()
    assert described["policy"] == "retrieval" and described["params"]["top_k"] == 3 and described["source"] == "preset"
    first, second = short.create(), short.create()
    assert first is not second and type(first) is POLICIES["retrieval"]
    # the preset works end to end under its own budget
    preamble, history = synthetic.episode(60, seed=1)
    request = PolicyInput(preamble, history, short.budget_tokens)
    check_invariants(request, first.build(request), first)


def test_resolve_by_policy_name_and_by_file(tmp_path):
    config = resolve_policy("sliding_window")
    assert config == PolicyConfig("sliding_window", "sliding_window", {"k_turns": 6}, None, "neutral", "policy",
                                  POLICIES["sliding_window"].description)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "name": "tight_window", "policy": "sliding_window",
                                    "params": {"k_turns": 2}, "budget_tokens": 3000, "clarification": "encourage"}))
    mine = resolve_policy(str(path))
    assert (mine.name, mine.policy, mine.params, mine.budget_tokens, mine.clarification, mine.source) == \
        ("tight_window", "sliding_window", {"k_turns": 2}, 3000, "encourage", "file")
    assert mine.create().params() == {"k_turns": 2}
    assert resolve_policy(path).name == "tight_window"  # a Path works too


@pytest.mark.parametrize("document,path,message", [
    ({"colour": "blue"}, "$", "unknown field(s): 'colour'"),
    ({"budget_tokens": "lots"}, "$.budget_tokens", "'lots' is not of type"),
    ({"clarification": "always"}, "$.clarification", "'always' is not one of"),
    ({"schema_version": 2}, "$.schema_version", "1 was expected"),
    ({"params": {"k_turns": [1]}}, "$.params.k_turns", "is not of type"),
    ({"params": {"bogus": 1}}, "$.params.bogus", "unknown parameter of 'sliding_window'"),
    ({"params": {"k_turns": 0}}, "$.params.k_turns", "must be >= 1"),
    ({"policy": "windowing"}, "$.policy", "unknown context policy 'windowing'"),
])
def test_invalid_policy_files_name_the_file_and_json_path(tmp_path, document, path, message):
    good = {"schema_version": 1, "name": "bad", "policy": "sliding_window", "params": {"k_turns": 3},
            "budget_tokens": None, "clarification": "neutral"}
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump({**good, **document}))
    with pytest.raises(PresetError) as caught:
        resolve_policy(str(file))
    text = str(caught.value)
    assert f"{file}: {path}: " in text and message in text, text
    assert isinstance(caught.value, ValueError)


def test_unreadable_yaml_is_reported_with_the_file(tmp_path):
    file = tmp_path / "broken.yaml"
    file.write_text("policy: [unclosed\n")
    with pytest.raises(PresetError, match=f"{file}: \\$: not valid YAML"):
        resolve_policy(str(file))


def test_unknown_spec_lists_the_known_names(tmp_path):
    with pytest.raises(ValueError) as caught:
        resolve_policy("medium_context")
    text = str(caught.value)
    assert "medium_context" in text and "short_context" in text and "sliding_window" in text
    with pytest.raises(ValueError, match="no such file"):
        resolve_policy(str(tmp_path / "missing.yaml"))
