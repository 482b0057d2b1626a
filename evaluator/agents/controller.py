"""Controller mode: one structured proposal per iteration, validated, applied by the evaluator.

Each iteration: the policy builds the context → the model proposes (JSON, checked against the
bundle's proposal schema) → the evaluator applies it with the bundle's apply tool → the result
goes back into the history. Stops when the model says stop, the target is reached or a budget
runs out.
"""
from __future__ import annotations

import json
from typing import Any

from policies.base import KIND_ACTION, KIND_OBSERVATION, Message, PolicyInput
from policies.marks import RESULT_MARK

from ..episode.context import EpisodeContext
from ..episode.result import StopReason
from ..errors import CtxevalError, EpisodeEnded
from ..jsonschemas import violations
from ..episode.memory import MemoryOpError, MemoryStore
from .base import ModelAgent
from .prompts import MEMORY_GUIDANCE, preamble, system_message, task_message
from .tools import MEMORY_TOOL

SYSTEM_PROMPT = """You are an ML experimenter working in controller mode. Each turn, reply with ONE JSON
object (no prose around it) that matches this JSON Schema:
{schema}
The evaluator applies your proposal by calling the tool `{tool}` and reports the result as a line
starting with "{result_mark}". Set "stop": true when you are done; {stop_rule}"""
STOP_KEPT_BEST = "your best configuration is then kept."
MEMORY_IN_PROPOSALS = ('To update it, add "memory": one memory command (as the tool takes it: {"command": "create", '
                       '"path": "/memories/notes.md", "file_text": "..."}) to a proposal; the result line says how it went.')
STOP_OPEN_ENDED = ("there is no fixed target: use the budget (`steps_left` in each result) to find the best "
                   "configuration you can; the configuration of your stop proposal is applied and graded.")


class ControllerAgent(ModelAgent):
    kind = "controller"
    mode = "controller"

    def _prompt(self, ctx: EpisodeContext, schema: dict[str, Any]) -> tuple[Message, Message]:
        spec = ctx.bundle.controller
        system = SYSTEM_PROMPT.format(schema=json.dumps(schema), tool=spec.apply_tool, result_mark=RESULT_MARK,
                                      stop_rule=STOP_OPEN_ENDED if ctx.bundle.target.open_ended else STOP_KEPT_BEST)
        if ctx.memory is not None:
            system += "\n" + MEMORY_GUIDANCE + " " + MEMORY_IN_PROPOSALS
        return system_message(system), task_message(ctx)

    @staticmethod
    def _schema(ctx: EpisodeContext, policy: Any) -> dict[str, Any]:
        """The bundle's proposal schema; with a policy that wants the agent's memory, a proposal may
        also carry `memory` (one memory command, applied before the proposal's configuration)."""
        schema = ctx.bundle.controller.proposal_schema
        if not getattr(policy, "wants_memory", False):
            return schema
        ctx.memory = ctx.memory or MemoryStore()
        return {**schema, "properties": {**schema.get("properties", {}), "memory": MEMORY_TOOL.parameters}}

    @staticmethod
    def _apply_memory(ctx: EpisodeContext, proposal: dict[str, Any]) -> dict[str, Any] | None:
        """The proposal's memory command, applied; what the result line reports of it."""
        if ctx.memory is None or not isinstance(proposal.get("memory"), dict):
            return None
        try:
            answer = {"ok": True, "answer": ctx.memory.apply(proposal["memory"])}
        except MemoryOpError as exc:
            answer = {"ok": False, "error": str(exc)}
        ctx.events.emit("memory", **ctx.memory.operations[-1])
        return answer

    def run(self, ctx: EpisodeContext) -> None:
        spec = ctx.bundle.controller
        if spec is None:
            raise CtxevalError(f"bundle {ctx.bundle.id!r} has no `controller` section: controller mode needs one")
        tool = ctx.bundle.tool(spec.apply_tool)
        arg_names = set(tool.parameters.get("properties", {}))
        policy = self.policy_config.create()
        schema = self._schema(ctx, policy)
        (system, task), history = self._prompt(ctx, schema), []
        best: dict[str, Any] | None = None
        last_applied: dict[str, Any] | None = None
        if spec.baseline_config:
            with ctx.trace.step(0):
                best = self._baseline(ctx, history)
                last_applied = best["arguments"] if best is not None else None
        while True:
            with ctx.trace.step(ctx.metrics.llm_calls + 1):
                built = policy.build(PolicyInput(preamble(system, task, ctx.memory, []), history,
                                                 self.policy_config.budget_tokens, counter=self.model.count_tokens))
                messages = built.messages
                ctx.check_budget()
                ctx.ask_probes(self.model, messages)
                response = ctx.call_model(self.model, messages, response_schema=schema,
                                          context_tokens=built.tokens, full_tokens=built.full_tokens)
                ctx.record_context_map(built)
                ctx.events.emit("llm_call", model=self.model.name, context_tokens=built.tokens,
                                full_tokens=built.full_tokens, messages=len(messages), response=response.text[:4000])
                turn = len(ctx.metrics.iterations) + 1
                history.append(Message("assistant", response.text, kind=KIND_ACTION, turn=turn))
                proposal, error = self._parse(response.text, schema)
                if error is not None:
                    ctx.outcomes["invalid_proposal"] += 1
                    ctx.events.emit("invalid_proposal", error=error)
                    text = ctx.plant_facts(f"{RESULT_MARK} {json.dumps({'ok': False, 'error': error})}")
                    history.append(Message("user", text, kind=KIND_OBSERVATION, turn=turn,
                                           meta={"ok": False, "error": error}))
                    if ctx.outcomes["invalid_proposal"] >= ctx.max_steps:
                        raise EpisodeEnded(StopReason.INVALID_PROPOSALS)
                    continue
                remembered = self._apply_memory(ctx, proposal)
                if proposal.get("stop"):
                    self._stop(ctx, proposal, best, last_applied, arg_names)
                    return
                arguments = {k: v for k, v in proposal.items() if k in arg_names}
                result = ctx.call_tool(spec.apply_tool, arguments)
                last_applied = arguments
                score = result.value(spec.score_key)
                ctx.record_iteration(arguments, score, result.ok)
                if score is not None and (best is None or ctx.bundle.target.better(score, best["score"])):
                    best = {"arguments": arguments, "score": score}
                observation = {"ok": result.ok, "score": score, "config": proposal.get("config"),
                               "error": result.error, **({"memory": remembered} if remembered else {})}
                if ctx.bundle.target.open_ended:
                    observation["steps_left"] = ctx.max_steps - ctx.metrics.steps
                history.append(Message("user", ctx.plant_facts(self._report(observation, result)),
                                       kind=KIND_OBSERVATION, turn=turn, meta=observation))
                if score is not None and ctx.bundle.target.meets_target(score) and not ctx.bundle.target.open_ended:
                    ctx.submit({"best": best, "note": "target reached"})
                    ctx.stop_reason = StopReason.TARGET
                    return

    @staticmethod
    def _report(observation: dict[str, Any], result: Any) -> str:
        """The RESULT line, then the tool's own report (a real run's log) when it prints one."""
        line = f"{RESULT_MARK} {json.dumps(observation, sort_keys=True)}"
        report = result.value("report")
        return f"{line}\n{report}" if isinstance(report, str) and report else line

    @staticmethod
    def _stop(ctx: EpisodeContext, proposal: dict[str, Any], best: dict[str, Any] | None,
              last_applied: dict[str, Any] | None, arg_names: set[str]) -> None:
        """The model stops. With an open-ended target its stop proposal is its submission (what it
        remembers as best); otherwise the best configuration the evaluator saw is kept."""
        spec = ctx.bundle.controller
        if ctx.bundle.target.open_ended:
            chosen = {k: v for k, v in proposal.items() if k in arg_names}
        else:
            chosen = best["arguments"] if best is not None else None
        if chosen is not None and chosen != last_applied:
            ctx.call_tool(spec.apply_tool, chosen)
        ctx.submit({"best": best, "submitted": chosen, "rationale": proposal.get("rationale")})
        ctx.stop_reason = StopReason.MODEL

    @staticmethod
    def _baseline(ctx: EpisodeContext, history: list[Message]) -> dict[str, Any] | None:
        """Iteration 0: the starter's own config, applied and recorded before any proposal."""
        spec = ctx.bundle.controller
        text = ctx.read_file(spec.baseline_config)
        try:
            config = json.loads(text) if text is not None else None
        except json.JSONDecodeError:
            config = None
        if not isinstance(config, dict):
            ctx.events.emit("baseline_unavailable", path=spec.baseline_config)
            return None
        arguments = {"config": config}
        result = ctx.call_tool(spec.apply_tool, arguments)
        score = result.value(spec.score_key)
        ctx.record_iteration(arguments, score, result.ok, iteration=0)
        proposal = json.dumps({"config": config, "rationale": "the starter baseline"}, sort_keys=True)
        observation = {"ok": result.ok, "score": score, "config": config, "error": result.error, "baseline": True}
        history.append(Message("assistant", proposal, kind=KIND_ACTION, turn=0))
        history.append(Message("user", ControllerAgent._report(observation, result),
                               kind=KIND_OBSERVATION, turn=0, meta=observation))
        return {"arguments": arguments, "score": score} if score is not None else None

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
