"""Actions as data ({exec}, {write_file}, {read_file}, {tool}, {submit}): the format of scripted
action files and of RL steps, applied through the episode context."""
from __future__ import annotations

from typing import Any

from .context import EpisodeContext

ACTION_KINDS = ("exec", "write_file", "read_file", "tool", "submit")


def apply_action(ctx: EpisodeContext, action: dict[str, Any]) -> str:
    """Apply one action (evaluator/schemas/actions.schema.json, one item) and return its observation text."""
    if "exec" in action:
        result = ctx.exec(action["exec"], timeout=action.get("timeout"))
        return f"exit code {result.exit_code} ({result.outcome})\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    if "write_file" in action:
        result = ctx.write_file(action["write_file"]["path"], action["write_file"]["content"])
        return f"wrote {action['write_file']['path']}" if result.ok else f"ERROR: {result.stderr.strip()}"
    if "read_file" in action:
        content = ctx.read_file(action["read_file"])
        return f"ERROR: cannot read {action['read_file']}" if content is None else content
    if "tool" in action:
        return ctx.call_tool(action["tool"], action.get("args", {})).observation()
    if "submit" in action:
        ctx.submit(action["submit"])
        return "submitted"
    raise ValueError(f"not an action: {sorted(action)}; expected one of {', '.join(ACTION_KINDS)}")
