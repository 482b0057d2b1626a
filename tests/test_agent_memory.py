"""The agent's own memory: the host-side store behind the `memory` tool (commands, path checks,
size limits, errors as observations), the policies built on it (offered the tool, memory pinned
after the task, the rest cleared or masked), the scripted models using it, and episodes that
record it (events.jsonl, result.json) in agentic and controller mode."""
from __future__ import annotations

import json
import subprocess
import sys

import gymnasium
import pytest
from hypothesis import given
from hypothesis import strategies as st

import evaluator.rl  # noqa: F401 - registers ctxeval/*
from evaluator.agents.prompts import memory_message
from evaluator.episode.memory import ROOT, MemoryLimits, MemoryOpError, MemoryStore
from evaluator.jsonschemas import validate
from evaluator.paths import BUNDLES_DIR
from policies import POLICIES, PolicyInput, resolve_policy, synthetic
from policies.base import KIND_MEMORY

# -- the store --------------------------------------------------------------------------------


def test_commands_create_view_replace_insert_delete():
    memory = MemoryStore()
    assert memory.apply({"command": "create", "path": "/memories/notes.md", "file_text": "a\nb"}) == \
        "created /memories/notes.md"
    assert "1\ta" in memory.apply({"command": "view", "path": "/memories/notes.md"})
    memory.apply({"command": "str_replace", "path": "notes.md", "old_str": "b", "new_str": "B"})
    memory.apply({"command": "insert", "path": "/memories/notes.md", "insert_line": 1, "insert_text": "mid"})
    assert memory.files == {"/memories/notes.md": "a\nmid\nB"}
    assert "/memories/notes.md" in memory.apply({"command": "view"})
    memory.apply({"command": "create", "path": "/memories/sub/x.json", "file_text": "{}"})
    assert memory.apply({"command": "delete", "path": "/memories/sub"}) == "deleted /memories/sub"
    assert list(memory.files) == ["/memories/notes.md"]
    snapshot = memory.snapshot()
    assert snapshot["operations"] == 7 and snapshot["errors"] == 0 and snapshot["bytes"] == len("a\nmid\nB")


@pytest.mark.parametrize("arguments, message", [
    ({"command": "view", "path": "/etc/passwd"}, "outside /memories"),
    ({"command": "create", "path": "/memories/../etc/x", "file_text": "x"}, "outside /memories"),
    ({"command": "create", "path": "../../x", "file_text": "x"}, "outside /memories"),
    ({"command": "create", "path": "/memories", "file_text": "x"}, "the memory folder, not a file"),
    ({"command": "view", "path": "/memories/none.md"}, "does not exist"),
    ({"command": "str_replace", "path": "/memories/none.md", "old_str": "a", "new_str": "b"}, "does not exist"),
    ({"command": "delete", "path": "/memories/none.md"}, "does not exist"),
    ({"command": "create", "path": "/memories/x", "file_text": 3}, "file_text must be a string"),
    ({"command": "format", "path": "/memories/x"}, "command must be one of"),
    ({"command": "create", "path": "", "file_text": "x"}, "non-empty string"),
    ({"command": "create", "path": "/memories/a\x00b", "file_text": "x"}, "invalid path"),
])
def test_a_bad_operation_is_an_error_that_changes_nothing(arguments, message):
    memory = MemoryStore()
    with pytest.raises(MemoryOpError, match=message):
        memory.apply(arguments)
    assert memory.files == {} and memory.operations[-1]["ok"] is False and message.split()[0] in \
        memory.operations[-1]["error"]


def test_size_limits_and_ambiguous_edits_are_refused():
    memory = MemoryStore(MemoryLimits(max_file_bytes=10, max_total_bytes=15, max_files=2))
    with pytest.raises(MemoryOpError, match="at most 10"):
        memory.apply({"command": "create", "path": "a", "file_text": "x" * 11})
    memory.apply({"command": "create", "path": "a", "file_text": "aaaaaaaa"})
    with pytest.raises(MemoryOpError, match="would hold 16 bytes; it holds at most 15"):
        memory.apply({"command": "create", "path": "b", "file_text": "b" * 8})
    memory.apply({"command": "create", "path": "b", "file_text": "bb"})
    with pytest.raises(MemoryOpError, match="at most 2 files"):
        memory.apply({"command": "create", "path": "c", "file_text": "c"})
    with pytest.raises(MemoryOpError, match="occurs 8 times"):
        memory.apply({"command": "str_replace", "path": "a", "old_str": "a", "new_str": "b"})
    with pytest.raises(MemoryOpError, match="insert_line must be"):
        memory.apply({"command": "insert", "path": "b", "insert_line": 5, "insert_text": "z"})
    assert memory.files == {"/memories/a": "aaaaaaaa", "/memories/b": "bb"}


@given(st.text(max_size=60))
def test_no_path_leaves_the_memory_folder(path):
    try:
        normal = MemoryStore.normalise(path)
    except MemoryOpError:
        return
    assert normal == ROOT or normal.startswith(ROOT + "/")
    assert "/../" not in normal + "/" and "\x00" not in normal


# -- the policies -------------------------------------------------------------------------------

def test_the_memory_policies_are_registered_with_presets_and_want_the_memory():
    for name in ("agent_memory", "memory_masking"):
        assert POLICIES[name].wants_memory and resolve_policy(name).create().wants_memory
    assert not any(POLICIES[n].wants_memory for n in POLICIES if n not in ("agent_memory", "memory_masking"))
    assert resolve_policy("memory").policy == "agent_memory" and resolve_policy("memory_masked").policy == \
        "memory_masking"
    listed = subprocess.run([sys.executable, "-m", "evaluator", "policies"], capture_output=True, text=True,
                            env={"COLUMNS": "250", "PATH": ""}, timeout=60)
    assert "agent_memory" in listed.stdout and "memory_masking" in listed.stdout


@pytest.mark.parametrize("name", ["agent_memory", "memory_masking"])
def test_the_pinned_memory_is_kept_and_old_outputs_are_not(name):
    memory = MemoryStore()
    memory.apply({"command": "create", "path": "/memories/facts.md", "file_text": "f23 leaks the label"})
    base, history = synthetic.episode(40, seed=1, long_rate=0.5)
    preamble = [*base, memory_message(memory)]
    built = resolve_policy(name).create().build(PolicyInput(preamble, history, None))
    assert built.messages[:len(preamble)] == preamble and preamble[-1].kind == KIND_MEMORY
    assert "f23 leaks the label" in preamble[-1].content
    assert built.tokens < built.full_tokens and "M" in built.turn_states  # older outputs cleared / masked


# -- episodes ----------------------------------------------------------------------------------

def run(bundle: str, mode: str, policy: str, tmp_path, run_id: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "evaluator", "run", bundle, "--mode", mode, "--policy", policy,
                           "--backend", "local", "--runs-dir", str(tmp_path), "--run-id", run_id],
                          capture_output=True, text=True, timeout=900, cwd=BUNDLES_DIR.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [path] = (tmp_path / run_id / "episodes").glob("*/result.json")
    result = json.loads(path.read_text())
    validate(result, "episode_result", path)
    events = [json.loads(line) for line in (path.parent / "events.jsonl").read_text().splitlines()]
    return {"result": result, "events": events}


@pytest.mark.slow
def test_an_agentic_episode_with_agent_memory_keeps_the_decisive_fact(tmp_path):
    with_memory = run("bundles/diabetes@long", "agentic", "agent_memory", tmp_path, "memory")
    without = run("bundles/diabetes@long", "agentic", "tool_result_clearing", tmp_path, "clearing")
    memory = with_memory["result"]["memory"]
    assert "hba1c_followup" in memory["files"]["/memories/facts.md"] and memory["errors"] == 0
    assert {"/memories/facts.md", "/memories/best.json"} <= set(memory["files"])
    ops = [e for e in with_memory["events"] if e["event"] == "memory"]
    assert len(ops) == memory["operations"] and all(op["ok"] for op in ops)
    assert "memory" not in without["result"]  # no memory without a policy that wants one
    assert with_memory["result"]["success"] and not without["result"]["success"]
    assert with_memory["result"]["probe_recall"]["overall"] > without["result"]["probe_recall"]["overall"]


@pytest.mark.slow
def test_controller_proposals_carry_memory_updates_the_evaluator_applies(tmp_path):
    episode = run("bundles/diabetes@long", "controller", "memory_masking", tmp_path, "controller")
    memory = episode["result"]["memory"]
    assert "hba1c_followup" in memory["files"]["/memories/facts.md"] and memory["operations"] >= 2
    assert episode["result"]["success"]


def test_memory_tool_errors_are_observations_in_the_environment():
    env = gymnasium.make("ctxeval/toy-v0", backend="local", policy="agent_memory")
    try:
        _, info = env.reset(seed=0)
        assert "memory" in info["tools"]
        observation, reward, terminated, truncated, info = env.step(
            {"name": "memory", "arguments": {"command": "create", "path": "/etc/cron.d/x", "file_text": "x"}})
        assert observation["text"].startswith("ERROR:") and "outside /memories" in info["error"] and not truncated
        env.step({"name": "memory", "arguments": {"command": "create", "path": "/memories/plan.md",
                                                   "file_text": "try boosting next"}})
        context = json.loads(env.unwrapped._observation()["context"])
        assert context[2]["kind"] == KIND_MEMORY and "try boosting next" in context[2]["content"]
        assert "memory" in context[0]["content"]  # the system prompt says how to use it
    finally:
        env.close()
    plain = gymnasium.make("ctxeval/toy-v0", backend="local")
    try:
        assert "memory" not in plain.reset(seed=0)[1]["tools"]
    finally:
        plain.close()
