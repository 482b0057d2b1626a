"""The tools an agentic model is offered, and how each call is answered: the built-in ones
(exec, read_file, write_file, edit_file, clarify, submit) and the bundle's own. Shared by agentic
mode and the RL environment, so a policy trained on the environment meets the same tools, the
same observations and the same errors as the one evaluated.

A malformed call (unknown tool, arguments that are not a JSON object or break the tool's schema)
is answered with an error observation, counted as a step, and the episode goes on."""
from __future__ import annotations

import json
from typing import Any

from policies.base import ToolCall

from ..episode.context import EpisodeContext
from ..episode.memory import COMMANDS as MEMORY_COMMANDS
from ..episode.memory import MemoryOpError
from ..jsonschemas import violations
from ..models.base import ToolSchema
from .clarify import Clarifier

OBSERVATION_CHARS = 6000

BUILTIN_TOOLS = [
    ToolSchema("exec", "Run a bash command in the workspace (no network). Returns exit code and output.",
               {"type": "object", "properties": {"command": {"type": "string"},
                                                  "timeout": {"type": "number", "exclusiveMinimum": 0}},
                "required": ["command"], "additionalProperties": False}),
    ToolSchema("read_file", "Read a text file (path relative to the workspace, or absolute).",
               {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"],
                "additionalProperties": False}),
    ToolSchema("write_file", "Create or overwrite a file with the given content.",
               {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                "required": ["path", "content"], "additionalProperties": False}),
    ToolSchema("edit_file", "Replace one exact occurrence of `old` with `new` in a file.",
               {"type": "object", "properties": {"path": {"type": "string"}, "old": {"type": "string"},
                                                  "new": {"type": "string"}},
                "required": ["path", "old", "new"], "additionalProperties": False}),
    ToolSchema("clarify", "Ask a clarifying question about the task or data; answered from the dataset "
                          "context. Answers are kept as hints for the rest of the episode.",
               {"type": "object", "properties": {"question": {"type": "string", "minLength": 1}},
                "required": ["question"], "additionalProperties": False}),
    ToolSchema("submit", "Finish the episode. The workspace as it is now is graded.",
               {"type": "object", "properties": {"summary": {"type": "string"}}, "additionalProperties": False}),
]


MEMORY_TOOL = ToolSchema(
    "memory", "Your own memory: text files under /memories that stay with you when older turns leave your "
              "context (they are shown to you after the task on every turn). Commands: view (the folder, or a "
              "file with line numbers), create (path, file_text: a new file or overwrite), str_replace (path, "
              "old_str, new_str: one exact occurrence), insert (path, insert_line, insert_text), delete (path).",
    {"type": "object", "properties": {
        "command": {"type": "string", "enum": list(MEMORY_COMMANDS)},
        "path": {"type": "string", "description": "a path under /memories"},
        "file_text": {"type": "string"}, "old_str": {"type": "string"}, "new_str": {"type": "string"},
        "insert_line": {"type": "integer", "minimum": 0}, "insert_text": {"type": "string"}},
     "required": ["command"], "additionalProperties": False})


def offered_tools(bundle: Any, memory: bool = False) -> list[ToolSchema]:
    """The built-in tools (with `memory` when the policy wants it), then the bundle's."""
    builtin = [*BUILTIN_TOOLS, *([MEMORY_TOOL] if memory else [])]
    return [*builtin, *(ToolSchema(t.name, t.description, t.parameters) for t in bundle.tools)]


def tool_observation(result: Any, steps_left: int | None = None) -> str:
    """A bundle tool's answer: its JSON (with the steps left, for open-ended targets), then its
    report (a real run's log) as plain text; the JSON comes first, so a cut at OBSERVATION_CHARS
    takes the end of the report."""
    if not result.ok or not isinstance(result.output, dict):
        return result.observation()
    report = result.output.get("report")
    rest = {k: v for k, v in result.output.items() if k != "report"}
    if steps_left is not None:
        rest["steps_left"] = steps_left
    text = json.dumps(rest, sort_keys=True)
    return f"{text}\n{report}" if isinstance(report, str) and report else text


class ToolDispatcher:
    """Answers an episode's tool calls; keeps the clarification hints the episode earned."""

    def __init__(self, ctx: EpisodeContext, tools: list[ToolSchema]):
        self.ctx, self.tools = ctx, tools
        self.clarifier = Clarifier(ctx.bundle, ctx.public_dir)
        self.hints: list[tuple[str, str]] = []

    def dispatch(self, call: ToolCall) -> tuple[str, dict[str, Any]]:
        """(observation, meta) of one call; never raises for a bad call (EpisodeEnded may escape)."""
        schema = next((t for t in self.tools if t.name == call.name), None)
        if schema is None:
            return self.reject(call, f"unknown tool {call.name!r}; available: {', '.join(t.name for t in self.tools)}")
        if not isinstance(call.arguments, dict):
            return self.reject(call, f"arguments of {call.name} are not a JSON object: {str(call.arguments)[:300]}")
        problems = violations(call.arguments, schema.parameters, f"arguments of {call.name}")
        if problems:
            return self.reject(call, "; ".join(f"{p.json_path}: {p.message}" for p in problems))
        builtin = {"exec": self._exec, "read_file": self._read, "write_file": self._write, "edit_file": self._edit,
                   "clarify": self._clarify, "submit": self._submit, "memory": self._memory}.get(call.name)
        return builtin(call.arguments) if builtin else self._bundle_tool(call.name, call.arguments)

    def reject(self, call: ToolCall, error: str) -> tuple[str, dict[str, Any]]:
        self.ctx.count_step("rejected_tool_call", tool=call.name, error=error)
        self.ctx.outcomes["tool_call_rejected"] += 1
        return f"ERROR: {error}", {"ok": False, "error": error, "tool": call.name}

    def _exec(self, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        result = self.ctx.exec(args["command"], timeout=args.get("timeout"))
        text = f"exit code {result.exit_code} ({result.outcome})\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        return text[:OBSERVATION_CHARS], {"ok": result.ok, "outcome": result.outcome, "tool": "exec"}

    def _read(self, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        content = self.ctx.read_file(args["path"])
        if content is None:
            return f"ERROR: cannot read {args['path']}", {"ok": False, "error": "not found", "tool": "read_file"}
        return content[:OBSERVATION_CHARS], {"ok": True, "tool": "read_file"}

    def _write(self, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        result = self.ctx.write_file(args["path"], args["content"])
        return (f"wrote {args['path']}" if result.ok else f"ERROR: {result.stderr.strip()}"), \
            {"ok": result.ok, "tool": "write_file"}

    def _edit(self, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        content = self.ctx.read_file(args["path"])
        if content is None:
            return f"ERROR: cannot read {args['path']}", {"ok": False, "error": "not found", "tool": "edit_file"}
        count = content.count(args["old"])
        if count != 1:
            return (f"ERROR: `old` occurs {count} times in {args['path']}; it must occur exactly once",
                    {"ok": False, "error": "ambiguous edit", "tool": "edit_file"})
        result = self.ctx.write_file(args["path"], content.replace(args["old"], args["new"], 1))
        return (f"edited {args['path']}" if result.ok else f"ERROR: {result.stderr.strip()}"), \
            {"ok": result.ok, "tool": "edit_file"}

    def _clarify(self, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.ctx.count_step("clarify", question=args["question"])
        answer, answered = self.clarifier.answer(args["question"])
        if answered:
            self.hints.append((args["question"], answer))
        self.ctx.events.emit("clarification", question=args["question"], answer=answer, answered=answered)
        return answer, {"ok": True, "tool": "clarify", "question": args["question"], "answered": answered}

    def _memory(self, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A memory command on the episode's host-side memory (ctx.memory): one step; an
        operation that cannot be done is an error observation, recorded like the others."""
        memory = self.ctx.memory
        self.ctx.count_step("memory", command=args.get("command"), path=args.get("path"))
        try:
            answer, meta = memory.apply(args), {"ok": True, "tool": "memory"}
        except MemoryOpError as exc:
            answer, meta = f"ERROR: {exc}", {"ok": False, "error": str(exc), "tool": "memory"}
        self.ctx.events.emit("memory", **memory.operations[-1])
        return answer[:OBSERVATION_CHARS], meta

    def _submit(self, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.ctx.submit({"summary": args.get("summary", "")})
        return "submitted", {"ok": True, "tool": "submit"}

    def _bundle_tool(self, name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ctx = self.ctx
        result = ctx.call_tool(name, args)
        meta: dict[str, Any] = {"ok": result.ok, "tool": name, "error": result.error}
        score_key = ctx.bundle.controller.score_key if ctx.bundle.controller else None
        if score_key is not None and result.value(score_key) is not None:
            meta.update(score=result.value(score_key), config=args.get("config", args))
        if ctx.bundle.controller and name == ctx.bundle.controller.apply_tool:
            ctx.record_iteration(args, meta.get("score"), result.ok)
        steps_left = ctx.max_steps - ctx.metrics.steps if ctx.bundle.target.open_ended else None
        return tool_observation(result, steps_left)[:OBSERVATION_CHARS], meta
