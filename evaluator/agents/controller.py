"""Controller mode: one structured proposal per iteration, validated, applied by the evaluator.

Each iteration: the policy builds the context → the model proposes (JSON, checked against the
bundle's proposal schema) → the evaluator applies it with the bundle's apply tool → the result
goes back into the history. Stops when the model says stop, the target is reached or a budget
runs out.
"""
from __future__ import annotations

import json
import time
from typing import Any

from policies.base import ContextPolicy, Message, messages_tokens

from ..episode.context import STOP_MODEL, STOP_TARGET, EpisodeContext
from ..errors import BudgetExceeded, CtxevalError
from ..jsonschemas import violations
from ..models.base import Model
from ..models.scripted import RESULT_MARK, TARGET_MARK
from .base import Agent

SYSTEM_PROMPT = """You are an ML experimenter working in controller mode. Each turn, reply with ONE JSON
object (no prose around it) that matches this JSON Schema:
{schema}
The evaluator applies your proposal by calling the tool `{tool}` and reports the result as a line
starting with "{result_mark}". Set "stop": true when you are done; your best configuration is then kept."""


class ControllerAgent(Agent):
    kind = "controller"
    mode = "controller"

    def __init__(self, model: Model, policy: ContextPolicy, budget_tokens: int | None = None):
        self.model = model
        self.policy = policy
        self.budget_tokens = budget_tokens

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "mode": self.mode, "model": self.model.name, "policy": self.policy.describe()}

    def _preamble(self, ctx: EpisodeContext) -> list[Message]:
        spec = ctx.bundle.controller
        target = ctx.bundle.target
        goal = {"score_key": spec.score_key, "metric": target.metric, "direction": target.direction,
                "goal": target.target_score(), "baseline": target.baseline, "seed": ctx.seed}
        system = SYSTEM_PROMPT.format(schema=json.dumps(spec.proposal_schema), tool=spec.apply_tool,
                                      result_mark=RESULT_MARK)
        task = f"{ctx.bundle.task_text}\n\n{TARGET_MARK} {json.dumps(goal, sort_keys=True)}\n"
        return [Message("system", system), Message("user", task)]

    def run(self, ctx: EpisodeContext) -> None:
        spec = ctx.bundle.controller
        if spec is None:
            raise CtxevalError(f"bundle {ctx.bundle.id!r} has no `controller` section: controller mode needs one")
        tool = ctx.bundle.tool(spec.apply_tool)
        arg_names = set(tool.parameters.get("properties", {}))
        preamble, history = self._preamble(ctx), []
        best: dict[str, Any] | None = None
        last_applied: dict[str, Any] | None = None
        while True:
            messages = self.policy.build(preamble, history, self.budget_tokens)
            started = time.monotonic()
            response = self.model.complete(messages, response_schema=spec.proposal_schema)
            ctx.record_llm_call(response.usage, time.monotonic() - started, messages_tokens(messages))
            ctx.events.emit("llm_call", model=self.model.name, context_tokens=messages_tokens(messages),
                            messages=len(messages), response=response.text[:4000])
            history.append(Message("assistant", response.text))
            proposal, error = self._parse(response.text, spec.proposal_schema)
            if error is not None:
                ctx.outcomes["invalid_proposal"] += 1
                ctx.events.emit("invalid_proposal", error=error)
                history.append(Message("user", f"{RESULT_MARK} {json.dumps({'ok': False, 'error': error})}"))
                if ctx.outcomes["invalid_proposal"] >= ctx.max_steps:
                    raise BudgetExceeded("too_many_invalid_proposals")
                continue
            if proposal.get("stop"):
                if best is not None and best["arguments"] != last_applied:
                    ctx.call_tool(spec.apply_tool, best["arguments"])
                ctx.submit({"best": best, "rationale": proposal.get("rationale")})
                ctx.stop_reason = STOP_MODEL
                return
            arguments = {k: v for k, v in proposal.items() if k in arg_names}
            result = ctx.call_tool(spec.apply_tool, arguments)
            last_applied = arguments
            score = result.output.get(spec.score_key) if result.ok and isinstance(result.output, dict) else None
            record = {"iteration": len(ctx.metrics.iterations) + 1, "step": ctx.metrics.steps,
                      "arguments": arguments, "score": score, "ok": result.ok}
            ctx.metrics.iterations.append(record)
            if score is not None and (best is None or ctx.bundle.target.better(score, best["score"])):
                best = {"arguments": arguments, "score": score}
            observation = {"ok": result.ok, "score": score, "config": proposal.get("config"),
                           "error": result.error}
            history.append(Message("user", f"{RESULT_MARK} {json.dumps(observation, sort_keys=True)}"))
            if score is not None and ctx.bundle.target.meets_target(score):
                ctx.submit({"best": best, "note": "target reached"})
                ctx.stop_reason = STOP_TARGET
                return

    @staticmethod
    def _parse(text: str, schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        try:
            start = text.index("{")
            proposal = json.JSONDecoder().raw_decode(text[start:])[0]
        except (ValueError, json.JSONDecodeError) as exc:
            return {}, f"the reply is not a JSON object: {exc}"
        problems = violations(proposal, schema, "proposal")
        if problems:
            return {}, "; ".join(f"{p.json_path}: {p.message}" for p in problems)
        return proposal, None
