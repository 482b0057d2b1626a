"""What an offline model can recall: only what is in the messages it is given.

Results (RESULT lines, JSON tool outputs, and the `score=... {config}` lines a summary or state
record spells out), planted facts (`[fact ID = VALUE]`) and constraints (`CONSTRAINT: {json}`).
A context policy that drops a turn drops what these find in it, exactly as for a real model.
"""
from __future__ import annotations

import json
import re
from typing import Any

from policies.base import Message
from policies.facts import split_notes  # noqa: F401 (the scripted models and tests read it from here)
from policies.marks import CONSTRAINT_MARK, FACT_MARK, FACT_TAG, MEMORY_MARK, PROBE_MARK

PROBE_PREFIX = f"{PROBE_MARK} "
UNKNOWN = "unknown"
SPELLED_RESULT = re.compile(r"score=([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)[^\n{]*?(\{)")
_DECODER = json.JSONDecoder()


def _json_at(text: str, at: int) -> Any | None:
    try:
        return _DECODER.raw_decode(text[at:])[0]
    except json.JSONDecodeError:
        return None


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object embedded in `text`, outermost first."""
    found, at = [], text.find("{")
    while at >= 0:
        try:
            value, end = _DECODER.raw_decode(text[at:])
        except json.JSONDecodeError:
            at = text.find("{", at + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        at = text.find("{", at + end)
    return found


def visible_results(messages: list[Message], score_key: str = "score") -> list[dict[str, Any]]:
    """{config, score} of every result the messages show, in order."""
    found = []
    for message in messages:
        if message.role == "assistant":
            continue
        for value in json_objects(message.content):
            score = value.get(score_key, value.get("score"))
            if isinstance(value.get("config"), dict) and isinstance(score, (int, float)) and \
                    not isinstance(score, bool):
                found.append({"config": value["config"], "score": score})
        for match in SPELLED_RESULT.finditer(message.content):
            config = _json_at(message.content, match.start(2))
            if isinstance(config, dict) and config:
                found.append({"config": config, "score": float(match.group(1))})
    return found


def visible_constraints(messages: list[Message]) -> dict[str, Any]:
    """Every constraint the messages state, merged (a later one on the same key wins)."""
    merged: dict[str, Any] = {}
    for message in messages:
        text = message.content
        at = text.find(CONSTRAINT_MARK)
        while at >= 0:
            after = at + len(CONSTRAINT_MARK)
            value = _json_at(text, after + (1 if text[after:after + 1] == " " else 0))
            if isinstance(value, dict):
                merged.update(value)
            at = text.find(CONSTRAINT_MARK, at + 1)
    return merged


def complies(config: dict[str, Any], constraints: dict[str, Any]) -> bool:
    """A list-valued constraint needs at least its items; any other value must be equal."""
    for key, wanted in constraints.items():
        have = config.get(key)
        if isinstance(wanted, list):
            if not isinstance(have, list) or not set(map(json.dumps, wanted)) <= set(map(json.dumps, have)):
                return False
        elif have != wanted:
            return False
    return True


def with_constraints(config: dict[str, Any], constraints: dict[str, Any]) -> dict[str, Any]:
    return {**config, **constraints}


def probe_reply(messages: list[Message]) -> str | None:
    """The answer to a probe (the last message), from the rest of the context; None if the last
    message is no probe."""
    if not messages or not messages[-1].content.startswith(PROBE_PREFIX):
        return None
    probe_id = messages[-1].content[len(PROBE_PREFIX):].split(":", 1)[0].strip()
    tag = f"{FACT_MARK}{probe_id} = "
    for message in reversed(messages[:-1]):
        at = message.content.rfind(tag)
        if at >= 0:
            value = _json_at(message.content, at + len(tag))
            if value is not None:
                return value if isinstance(value, str) else json.dumps(value)
    return UNKNOWN



# -- the agent's own memory (episode/memory.py), as an offline model keeps it ------------------
MEMORY_FACTS = "/memories/facts.md"
MEMORY_BEST = "/memories/best.json"


def pinned_memory(messages: list[Message]) -> str | None:
    """The text of the pinned memory message, or None when the agent has no memory."""
    return next((m.content for m in messages if m.content.startswith(MEMORY_MARK)), None)


def fact_lines(text: str) -> list[str]:
    """The lines of planted facts in `text`: each fact's sentence, its tag and its constraint."""
    lines, found = text.split("\n"), []
    for index, line in enumerate(lines):
        if FACT_TAG.match(line.strip()):
            if index and not FACT_TAG.match(lines[index - 1].strip()) and lines[index - 1].strip():
                found.append(lines[index - 1].strip())
            found.append(line.strip())
        elif line.strip().startswith(CONSTRAINT_MARK):
            found.append(line.strip())
    return found


def memory_write(messages: list[Message], score_key: str, best: dict[str, Any] | None) -> dict[str, Any] | None:
    """The memory command a diligent agent sends next, or None: first the facts it was told that
    its memory lacks (the whole facts file, rewritten), then its best result when it changed."""
    memory = pinned_memory(messages)
    if memory is None:
        return None
    seen: list[str] = []
    for message in messages:
        if message.role != "assistant":
            seen += [line for line in fact_lines(message.content) if line not in seen]
    if any(line not in memory for line in seen):
        return {"command": "create", "path": MEMORY_FACTS, "file_text": "\n".join(seen)}
    if best is not None:
        record = json.dumps({"config": best["config"], score_key: best["score"]}, sort_keys=True)
        if record not in memory:
            return {"command": "create", "path": MEMORY_BEST, "file_text": record}
    return None
