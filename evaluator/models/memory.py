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
from policies.marks import CONSTRAINT_MARK, FACT_MARK, PROBE_MARK

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

