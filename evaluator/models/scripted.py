"""Deterministic offline models (`scripted:<name>`, SCRIPTED_MODELS). They read only the messages
they are given (never the episode), so a context policy that drops history makes them repeat work,
as a real model would."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from policies.base import Message, ToolCall, count_tokens
from policies.marks import TARGET_MARK

from ..errors import CtxevalError
from .base import Model, ModelResponse, ModelSpec, ToolSchema, Usage
from .memory import (complies, json_objects, memory_write, probe_reply, split_notes, visible_constraints,
                     visible_results, with_constraints)
from .search import candidate_configs


def _json_after(mark: str, text: str) -> Any | None:
    at = text.find(mark)
    if at < 0:
        return None
    try:
        return json.JSONDecoder().raw_decode(text[at + len(mark):].lstrip())[0]
    except json.JSONDecodeError:
        return None


STOP_STEPS_LEFT = 2  # open-ended: stop while one more apply and the submit still fit


def _usage(messages: list[Message], reply: str) -> Usage:
    prompt = count_tokens("\n".join(m.content for m in messages)) + 4 * len(messages)
    return Usage(prompt_tokens=prompt, completion_tokens=count_tokens(reply))


def _target(messages: list[Message]) -> dict[str, Any]:
    return next((t for m in messages if (t := _json_after(TARGET_MARK, m.content))), {}) or {}


def _steps_left(messages: list[Message]) -> int | None:
    """The budget the newest result reports (open-ended targets)."""
    for value in json_objects(messages[-1].content) if messages else []:
        if isinstance(value.get("steps_left"), int):
            return value["steps_left"]
    return None


class ScriptedModel(Model):
    """The `scripted:` provider and the base of its models: a probe is answered from the context
    alone, anything else by the model's own `reply`."""

    @classmethod
    def from_spec(cls, spec: ModelSpec, base_url: str | None, options: dict[str, Any]) -> Model:
        """A model of SCRIPTED_MODELS by name. Offline stand-ins take no settings: base_url and the
        API clients' options are ignored, so one command line serves scripted and API models."""
        if spec.name not in SCRIPTED_MODELS:
            raise CtxevalError(f"unknown scripted model {spec.name!r}; known: {', '.join(sorted(SCRIPTED_MODELS))}")
        return SCRIPTED_MODELS[spec.name]()

    def complete(self, messages: list[Message], tools: list[ToolSchema] | None = None,
                 response_schema: dict[str, Any] | None = None, *, deadline: float | None = None) -> ModelResponse:
        answer = probe_reply(messages)
        if answer is not None:
            return ModelResponse(text=answer, usage=_usage(messages, answer))
        return self.reply(messages, tools, response_schema)

    def reply(self, messages: list[Message], tools: list[ToolSchema] | None,
              response_schema: dict[str, Any] | None) -> ModelResponse:
        """The model's answer to anything but a probe."""
        raise NotImplementedError


class HillClimb(ScriptedModel):
    """Controller-mode model: proposes the next untried candidate it can see (obeying every
    constraint it can see), and stops at the target, or near the end of an open-ended budget with
    the best compliant configuration it remembers. When proposals may carry a `memory` command, one
    rides along whenever it has learned something its memory lacks (facts it was told, a new best)."""

    name = "scripted:hill_climb"

    def reply(self, messages: list[Message], tools: list[ToolSchema] | None,
              response_schema: dict[str, Any] | None) -> ModelResponse:
        target, constraints = _target(messages), visible_constraints(messages)
        results = visible_results(messages, target.get("score_key", "score"))
        tried = [p["config"] for m in messages if m.role == "assistant"
                 for p in json_objects(m.content)[:1] if isinstance(p.get("config"), dict)]
        tried += [r["config"] for r in results]
        best = None
        for result in (r for r in results if complies(r["config"], constraints)):
            if best is None or self._better(result["score"], best["score"], target):
                best = result
        goal, steps_left = target.get("goal"), _steps_left(messages)
        if best is not None and goal is not None and self._reached(best["score"], goal, target):
            reply = {"config": best["config"], "stop": True,
                     "rationale": f"score {best['score']:.4f} meets the target {goal}"}
        elif best is not None and steps_left is not None and steps_left <= STOP_STEPS_LEFT:
            reply = {"config": best["config"], "stop": True,
                     "rationale": f"budget nearly spent; best compliant score {best['score']:.4f}"}
        else:
            config_schema = (response_schema or {}).get("properties", {}).get("config", {})
            candidates = [with_constraints(c, constraints)
                          for c in candidate_configs(config_schema, int(target.get("seed", 0)))]
            untried = [c for c in candidates if c not in tried]
            if untried:
                reply = {"config": untried[0], "rationale": f"untried candidate; {len(tried)} tried so far"}
            else:
                reply = {"config": (best or {}).get("config", {}), "stop": True, "rationale": "no candidates left"}
        if "memory" in (response_schema or {}).get("properties", {}):  # a memory rides along with the proposal
            write = memory_write(messages, target.get("score_key", "score"), best)
            if write is not None:
                reply["memory"] = write
        content = json.dumps(reply, sort_keys=True)
        return ModelResponse(text=content, usage=_usage(messages, content))

    @staticmethod
    def _better(a: float, b: float, target: dict[str, Any]) -> bool:
        return a < b if target.get("direction") == "minimize" else a > b

    @staticmethod
    def _reached(score: float, goal: float, target: dict[str, Any]) -> bool:
        return score <= goal if target.get("direction") == "minimize" else score >= goal


class React(ScriptedModel):
    """Agentic-mode model: looks around, optionally clarifies, tries untried configurations with
    the bundle's apply tool (obeying the constraints it can see), keeps its best and submits at
    the target or near the end of an open-ended budget. Offered the `memory` tool, it saves the facts
    it is told and each new best before the next experiment. Decides from `messages` only."""

    name = "scripted:react"

    def reply(self, messages: list[Message], tools: list[ToolSchema] | None,
              response_schema: dict[str, Any] | None) -> ModelResponse:
        prompt_tokens = sum(count_tokens(m.content) + 4 for m in messages)
        if not tools:  # a summarisation request
            text = self._summary(messages)
            return ModelResponse(text=text, usage=Usage(prompt_tokens, count_tokens(text)))
        name, arguments = self._decide(messages, tools)
        text = f"Next: {name}."
        digest = hashlib.sha1(f"{len(messages)}:{json.dumps(arguments, sort_keys=True)}".encode()).hexdigest()
        tool_call = ToolCall(id=f"call_{digest[:12]}", name=name, arguments=arguments)
        completion = count_tokens(text) + count_tokens(json.dumps(arguments))
        return ModelResponse(text=text, usage=Usage(prompt_tokens, completion), tool_calls=[tool_call])

    @staticmethod
    def _decide(messages: list[Message], tools: list[ToolSchema]) -> tuple[str, dict[str, Any]]:
        target, constraints = _target(messages), visible_constraints(messages)
        score_key, apply_tool = target.get("score_key", "score"), target.get("apply_tool")
        calls = [c for m in messages if m.role == "assistant" for c in m.tool_calls]
        names = [c.name for c in calls]
        system = next((m.content for m in messages if m.role == "system"), "")
        results = visible_results(messages, score_key)
        best = None
        for result in (r for r in results if complies(r["config"], constraints)):
            if best is None or HillClimb._better(result["score"], best["score"], target):
                best = result
        tried = [c.arguments.get("config") for c in calls if c.name == apply_tool and isinstance(c.arguments, dict)]
        tried += [r["config"] for r in results]
        steps_left = _steps_left(messages)
        if "before experimenting" in system and "clarify" not in names and \
                not any(m.kind == "hints" for m in messages):
            return "clarify", {"question": "Which metric is used, and what score is the target?"}
        if "exec" not in names:
            return "exec", {"command": "ls -la && cat config.json"}
        done = target.get("goal") is not None and HillClimb._reached(best["score"], target["goal"], target) \
            if best is not None else False
        if best is not None and (done or (steps_left is not None and steps_left <= STOP_STEPS_LEFT)):
            last = next((c.arguments for c in reversed(calls) if c.name == apply_tool), None)
            if isinstance(last, dict) and last.get("config") == best["config"]:
                return "submit", {"summary": f"best {score_key} {best['score']}"}
            return apply_tool, {"config": best["config"]}
        tool_by_name = {t.name: t for t in tools}
        write = memory_write(messages, score_key, best) if "memory" in tool_by_name else None
        if write is not None:  # offered a memory: save what was learned before experimenting on
            return "memory", write
        schema = tool_by_name[apply_tool].parameters["properties"]["config"] if apply_tool in tool_by_name else {}
        candidates = [with_constraints(c, constraints) for c in candidate_configs(schema, int(target.get("seed", 0)))]
        untried = [c for c in candidates if c not in tried]
        if untried and apply_tool:
            return apply_tool, {"config": untried[0]}
        return "submit", {"summary": "no candidates left" if best is not None else "nothing to try"}

    @staticmethod
    def _summary(messages: list[Message]) -> str:
        """What a careful summariser keeps: every call, stated facts and constraints, and the head
        of each result."""
        lines = []
        for message in messages:
            for call in message.tool_calls:
                lines.append(f"called {call.name} {json.dumps(call.arguments, sort_keys=True)}")
            if message.role == "tool" or message.kind == "observation":
                notes, rest = split_notes(message.content)
                lines += notes
                lines.append(f"result: {rest[:300]}")
        return "\n".join(lines) or "nothing yet"


SCRIPTED_MODELS: dict[str, type[ScriptedModel]] = {"hill_climb": HillClimb, "react": React}

__all__ = ["HillClimb", "React", "SCRIPTED_MODELS", "ScriptedModel", "candidate_configs"]
