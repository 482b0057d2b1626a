"""Agentic mode: a ReAct-style tool loop. The model calls tools; the evaluator runs them in the
sandbox and answers each call with an observation (agents/tools.py: the tools offered and how a
call is answered, malformed ones included)."""
from __future__ import annotations

from typing import Any

from policies.base import KIND_ACTION, KIND_OBSERVATION, Message, PolicyInput, SummarizerResult

from ..episode.context import EpisodeContext
from ..episode.result import StopReason
from ..errors import EpisodeEnded
from ..models.base import Model, ModelResponse
from .base import ModelAgent
from .prompts import CLARIFICATION_GUIDANCE, MEMORY_GUIDANCE, preamble, system_message, task_message
from .tools import ToolDispatcher, offered_tools

MAX_IDLE_REPLIES = 3

SYSTEM_PROMPT = """You are an ML engineer solving a task inside a sandboxed workspace (no network).
Act only through the tools. Run experiments, read their results, and improve on the baseline.
Write the required output, then call `submit` when you are done.
{clarification}"""


def agentic_prompt(ctx: EpisodeContext, policy: Any, clarification: str) -> Message:
    """The system prompt; a policy that wants the agent's memory gets it here (ctx.memory) and
    the prompt says how to use it."""
    from ..episode.memory import MemoryStore
    text = SYSTEM_PROMPT.format(clarification=CLARIFICATION_GUIDANCE[clarification])
    if getattr(policy, "wants_memory", False):
        ctx.memory = ctx.memory or MemoryStore()
        text += "\n" + MEMORY_GUIDANCE
    return system_message(text)


class AgenticAgent(ModelAgent):
    kind = "agentic"
    mode = "agentic"

    def __init__(self, model: Model, policy_config: Any, stop_on_valid_output: bool = False):
        super().__init__(model, policy_config)
        self.stop_on_valid_output = stop_on_valid_output

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
        system, task = agentic_prompt(ctx, policy, self.policy_config.clarification), task_message(ctx)
        self.tools = offered_tools(ctx.bundle, memory=ctx.memory is not None)
        dispatcher = ToolDispatcher(ctx, self.tools)
        hints = dispatcher.hints
        history: list[Message] = []
        idle = 0
        turn = 0
        while True:
            with ctx.trace.step(turn + 1):
                built = policy.build(PolicyInput(preamble(system, task, ctx.memory, hints), history,
                                                 self.policy_config.budget_tokens,
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
                    content, meta = dispatcher.dispatch(call)
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
