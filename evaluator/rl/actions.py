"""What a step of a bundle environment takes: a tool call, as text or as an object.

    {"name": "train_and_evaluate", "arguments": {"config": {"model": "random_forest"}}}

`arguments` may also be a JSON text (as chat APIs send it). The tools are agentic mode's
(agents/tools.py: exec, read_file, write_file, edit_file, clarify, submit and the bundle's own).
An item of the scripted-actions format ({"exec": cmd}, {"read_file": path}, {"write_file": {...}},
{"tool": name, "args": {...}}, {"submit": {...}}) is the same call written the older way.

Anything else is an `InvalidAction` with a message saying what was expected.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from policies.base import ToolCall

EXAMPLE = '{"name": "exec", "arguments": {"command": "ls"}}'


class InvalidAction(ValueError):
    """The action is not a tool call; the message says why."""


def _scripted(action: dict[str, Any]) -> tuple[str, Any] | None:
    """(tool, arguments) of a scripted-actions item, or None when it is not one."""
    if set(action) <= {"exec", "timeout"} and "exec" in action:
        return "exec", {"command": action["exec"], **({"timeout": action["timeout"]} if "timeout" in action else {})}
    if set(action) == {"read_file"}:
        return "read_file", {"path": action["read_file"]}
    if set(action) == {"write_file"}:
        return "write_file", action["write_file"]
    if set(action) <= {"tool", "args"} and "tool" in action:
        return str(action["tool"]), action.get("args", {})
    if set(action) == {"submit"}:
        summary = (action["submit"] or {}).get("summary") if isinstance(action["submit"], dict) else None
        return "submit", {"summary": summary} if isinstance(summary, str) else {}
    return None


def parse_action(action: Any, step: int) -> ToolCall:
    """The tool call an action holds; its id is derived from the step and the call (stable)."""
    if isinstance(action, (bytes, bytearray)):
        action = action.decode("utf-8", errors="replace")
    if isinstance(action, str):
        try:
            action = json.loads(action)
        except json.JSONDecodeError as exc:
            raise InvalidAction(f"the action is not valid JSON ({exc.msg} at character {exc.pos}); "
                                f"expected a tool call like {EXAMPLE}") from None
    if not isinstance(action, dict):
        raise InvalidAction(f"the action must be a JSON object like {EXAMPLE}, got {type(action).__name__}")
    if "name" in action:
        unknown = sorted(set(action) - {"name", "arguments", "id"})
        if unknown or not isinstance(action["name"], str):
            raise InvalidAction(f"a tool call has `name` (a string) and `arguments`; unexpected: {unknown or 'name'}")
        name, arguments = action["name"], action.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                pass  # kept as text: the dispatcher answers "arguments ... are not a JSON object"
    else:
        found = _scripted(action)
        if found is None:
            raise InvalidAction(f"not a tool call: keys {sorted(action)}; expected {EXAMPLE}")
        name, arguments = found
    digest = hashlib.sha1(f"{step}:{name}:{json.dumps(arguments, sort_keys=True, default=str)}".encode()).hexdigest()
    return ToolCall(id=str(action.get("id") or f"call_{digest[:12]}"), name=name, arguments=arguments)
