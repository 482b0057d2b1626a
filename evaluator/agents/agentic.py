"""Agentic mode: a ReAct-style tool loop. The model calls tools; the evaluator runs them in the
sandbox and answers each call with an observation. Malformed calls (unknown tool, arguments that
are not JSON or break the tool's schema) are answered with an error observation and the episode
goes on."""
from __future__ import annotations

import json
from typing import Any

from policies.base import KIND_ACTION, KIND_OBSERVATION, Message, PolicyInput, SummarizerResult, ToolCall

from ..episode.context import EpisodeContext
from ..episode.result import StopReason
from ..errors import EpisodeEnded
from ..jsonschemas import violations
from ..models.base import Model, ModelResponse, ToolSchema
from .base import ModelAgent
from .clarify import Clarifier
from .prompts import CLARIFICATION_GUIDANCE, hints_message, system_message, task_message

OBSERVATION_CHARS = 6000
MAX_IDLE_REPLIES = 3

SYSTEM_PROMPT = """You are an ML engineer solving a task inside a sandboxed workspace (no network).
Act only through the tools. Run experiments, read their results, and improve on the baseline.
Write the required output, then call `submit` when you are done.
{clarification}"""

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


class AgenticAgent(ModelAgent):
    kind = "agentic"
    mode = "agentic"

    def __init__(self, model: Model, policy_config: Any, stop_on_valid_output: bool = False):
        super().__init__(model, policy_config)
        self.stop_on_valid_output = stop_on_valid_output

    # -- setup ---------------------------------------------------------------------
    def _tools(self, ctx: EpisodeContext) -> list[ToolSchema]:
        bundle_tools = [ToolSchema(t.name, t.description, t.parameters) for t in ctx.bundle.tools]
        return [*BUILTIN_TOOLS, *bundle_tools]

    def _summarizer(self, ctx: EpisodeContext):
        """Summaries are produced by the episode's model and billed apart from the agent's calls."""
        def summarize(messages: list[Message]) -> SummarizerResult:
            prompt = [system_message("Summarise the experiment so far: configurations tried, results, "
                                     "errors and open questions. Be brief and factual."), *messages]
            response = ctx.call_model(self.model, prompt, context_tokens=0, summarizer=True)
            usage = response.usage
            return SummarizerResult(response.text, usage.prompt_tokens, usage.completion_tokens, usage.cost_usd)
        return summarize

    # -- loop ------------------------------------------------------------------------
    def run(self, ctx: EpisodeContext) -> None:
        policy = self.policy_config.create()
        clarification = CLARIFICATION_GUIDANCE[self.policy_config.clarification]
        system = system_message(SYSTEM_PROMPT.format(clarification=clarification))
        task = task_message(ctx)
        self.tools = self._tools(ctx)
        clarifier = Clarifier(ctx.bundle, ctx.public_dir)
        hints: list[tuple[str, str]] = []
        history: list[Message] = []
        idle = 0
        turn = 0
        while True:
            with ctx.trace.step(turn + 1):
                hint = hints_message(hints)
                preamble = [system, task, *([hint] if hint else [])]
                built = policy.build(PolicyInput(preamble, history, self.policy_config.budget_tokens,
                                                 counter=self.model.count_tokens, summarizer=self._summarizer(ctx)))
                ctx.check_budget()
                ctx.ask_probes(self.model, built.messages)
                response = self._call(ctx, built)
                ctx.record_context_map(built)
                turn += 1
                history.append(Message("assistant", response.text, tool_calls=list(response.tool_calls),
                                       kind=KIND_ACTION, turn=turn))
                if not response.tool_calls:
                    idle += 1
                    ctx.events.emit("idle_reply", text=response.text[:2000])
                    if idle >= MAX_IDLE_REPLIES:
                        ctx.stop_reason = StopReason.MODEL
                        raise EpisodeEnded(StopReason.MODEL)
                    history.append(Message("user", ctx.plant_facts("No tool was called. Use a tool, or call `submit` "
                                                                   "when done."), kind=KIND_OBSERVATION, turn=turn))
                    continue
                idle = 0
                for call in response.tool_calls:
                    content, meta = self._dispatch(ctx, call, clarifier, hints)
                    history.append(Message("tool", ctx.plant_facts(content), tool_call_id=call.id, name=call.name,
                                           kind=KIND_OBSERVATION, turn=turn, meta=meta))
                    if ctx.submitted is not None:
                        return
                if self._done(ctx, history):
                    return

    def _call(self, ctx: EpisodeContext, built) -> ModelResponse:
        for summary in built.summarizer_calls:
            ctx.events.emit("summarizer_call", prompt_tokens=summary.prompt_tokens,
                            completion_tokens=summary.completion_tokens)
        response = ctx.call_model(self.model, built.messages, tools=self.tools, context_tokens=built.tokens,
                                  full_tokens=built.full_tokens)
        ctx.events.emit("llm_call", model=self.model.name, context_tokens=built.tokens, full_tokens=built.full_tokens,
                        dropped_turns=built.dropped_turns, messages=len(built.messages),
                        response=response.text[:2000], tool_calls=[c.as_dict() for c in response.tool_calls],
                        usage=vars(response.usage))
        return response

    def _done(self, ctx: EpisodeContext, history: list[Message]) -> bool:
        """Stop criteria besides submit: the task-native target, or (if asked) a valid output."""
        last_scores = [m.meta.get("score") for m in history if m.role == "tool" and m.turn == history[-1].turn]
        if not ctx.bundle.target.open_ended and \
                any(s is not None and ctx.bundle.target.meets_target(s) for s in last_scores):
            ctx.submit({"note": "target reached"})
            ctx.stop_reason = StopReason.TARGET
            return True
        if self.stop_on_valid_output and ctx.output_valid():
            ctx.submit({"note": "valid output"})
            ctx.stop_reason = StopReason.VALID_OUTPUT
            return True
        return False

    # -- tools -------------------------------------------------------------------------
    def _dispatch(self, ctx: EpisodeContext, call: ToolCall, clarifier: Clarifier,
                  hints: list[tuple[str, str]]) -> tuple[str, dict[str, Any]]:
        schema = next((t for t in self.tools if t.name == call.name), None)
        if schema is None:
            return self._reject(ctx, call, f"unknown tool {call.name!r}; available: "
                                           f"{', '.join(t.name for t in self.tools)}")
        if not isinstance(call.arguments, dict):
            return self._reject(ctx, call, f"arguments of {call.name} are not a JSON object: {str(call.arguments)[:300]}")
        problems = violations(call.arguments, schema.parameters, f"arguments of {call.name}")
        if problems:
            return self._reject(ctx, call, "; ".join(f"{p.json_path}: {p.message}" for p in problems))
        args = call.arguments
        if call.name == "exec":
            result = ctx.exec(args["command"], timeout=args.get("timeout"))
            text = f"exit code {result.exit_code} ({result.outcome})\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            return text[:OBSERVATION_CHARS], {"ok": result.ok, "outcome": result.outcome, "tool": "exec"}
        if call.name == "read_file":
            content = ctx.read_file(args["path"])
            if content is None:
                return f"ERROR: cannot read {args['path']}", {"ok": False, "error": "not found", "tool": "read_file"}
            return content[:OBSERVATION_CHARS], {"ok": True, "tool": "read_file"}
        if call.name == "write_file":
            result = ctx.write_file(args["path"], args["content"])
            return (f"wrote {args['path']}" if result.ok else f"ERROR: {result.stderr.strip()}"), \
                {"ok": result.ok, "tool": "write_file"}
        if call.name == "edit_file":
            return self._edit(ctx, args)
        if call.name == "clarify":
            ctx.count_step("clarify", question=args["question"])
            answer, answered = clarifier.answer(args["question"])
            if answered:
                hints.append((args["question"], answer))
            ctx.events.emit("clarification", question=args["question"], answer=answer, answered=answered)
            return answer, {"ok": True, "tool": "clarify", "question": args["question"], "answered": answered}
        if call.name == "submit":
            ctx.submit({"summary": args.get("summary", "")})
            return "submitted", {"ok": True, "tool": "submit"}
        result = ctx.call_tool(call.name, args)
        meta: dict[str, Any] = {"ok": result.ok, "tool": call.name, "error": result.error}
        score_key = ctx.bundle.controller.score_key if ctx.bundle.controller else None
        if score_key is not None and result.value(score_key) is not None:
            meta.update(score=result.value(score_key), config=args.get("config", args))
        if ctx.bundle.controller and call.name == ctx.bundle.controller.apply_tool:
            ctx.record_iteration(args, meta.get("score"), result.ok)
        steps_left = ctx.max_steps - ctx.metrics.steps if ctx.bundle.target.open_ended else None
        return tool_observation(result, steps_left)[:OBSERVATION_CHARS], meta

    def _edit(self, ctx: EpisodeContext, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        content = ctx.read_file(args["path"])
        if content is None:
            return f"ERROR: cannot read {args['path']}", {"ok": False, "error": "not found", "tool": "edit_file"}
        count = content.count(args["old"])
        if count != 1:
            return (f"ERROR: `old` occurs {count} times in {args['path']}; it must occur exactly once",
                    {"ok": False, "error": "ambiguous edit", "tool": "edit_file"})
        result = ctx.write_file(args["path"], content.replace(args["old"], args["new"], 1))
        return (f"edited {args['path']}" if result.ok else f"ERROR: {result.stderr.strip()}"), \
            {"ok": result.ok, "tool": "edit_file"}

    @staticmethod
    def _reject(ctx: EpisodeContext, call: ToolCall, error: str) -> tuple[str, dict[str, Any]]:
        ctx.count_step("rejected_tool_call", tool=call.name, error=error)
        ctx.outcomes["tool_call_rejected"] += 1
        return f"ERROR: {error}", {"ok": False, "error": error, "tool": call.name}
