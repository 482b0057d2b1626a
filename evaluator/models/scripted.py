"""Deterministic offline models. They read only the messages they are given (never the episode),
so a context policy that drops history makes them repeat work, as a real model would."""
from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from policies.base import Message, ToolCall, count_tokens

from ..episode.context import Usage
from .base import Model, ModelResponse, ToolSchema

TARGET_MARK = "TARGET:"
RESULT_MARK = "RESULT:"


def _json_after(mark: str, text: str) -> Any | None:
    at = text.find(mark)
    if at < 0:
        return None
    try:
        return json.JSONDecoder().raw_decode(text[at + len(mark):].lstrip())[0]
    except json.JSONDecodeError:
        return None


def candidate_configs(config_schema: dict[str, Any], seed: int, count: int = 24) -> list[dict[str, Any]]:
    """Configs a diligent experimenter would try: each choice of every enum alone, then seeded
    random combinations of enums and bounded numbers."""
    props = config_schema.get("properties", {})
    required = config_schema.get("required", [])
    enums = {k: v["enum"] for k, v in props.items() if "enum" in v}
    first = required[0] if required and required[0] in enums else next(iter(enums), None)
    found: list[dict[str, Any]] = [{first: value} for value in enums.get(first, [])] if first else []
    rng = random.Random(seed)
    numeric = {k: v for k, v in props.items() if v.get("type") in ("integer", "number")
               and "minimum" in v and "maximum" in v}
    for _ in range(count * 4):
        if len(found) >= count:
            break
        config = {k: rng.choice(v) for k, v in enums.items()}
        for key, spec in numeric.items():
            lo, hi = spec["minimum"], spec["maximum"]
            config[key] = rng.randint(lo, hi) if spec["type"] == "integer" else round(rng.uniform(lo, hi), 4)
        if config and config not in found:
            found.append(config)
    return found


class HillClimb(Model):
    """Controller-mode model: proposes the next untried candidate it can see, stops at the target."""

    name = "scripted:hill_climb"

    def complete(self, messages: list[Message], tools: list[ToolSchema] | None = None,
                 response_schema: dict[str, Any] | None = None, *, deadline: float | None = None) -> ModelResponse:
        text = "\n".join(m.content for m in messages)
        target = next((t for m in messages if (t := _json_after(TARGET_MARK, m.content))), {}) or {}
        tried, best = [], None
        for message in messages:
            if message.role == "assistant":
                proposal = _json_after("", message.content) if message.content.lstrip().startswith("{") else None
                if isinstance(proposal, dict) and "config" in proposal:
                    tried.append(proposal["config"])
            result = _json_after(RESULT_MARK, message.content)
            if isinstance(result, dict) and isinstance(result.get("score"), (int, float)):
                if best is None or self._better(result["score"], best["score"], target):
                    best = result
        goal = target.get("goal")
        if best is not None and goal is not None and self._reached(best["score"], goal, target):
            reply = {"config": best["config"], "stop": True,
                     "rationale": f"score {best['score']:.4f} meets the target {goal}"}
        else:
            config_schema = (response_schema or {}).get("properties", {}).get("config", {})
            seed = int(target.get("seed", 0))
            untried = [c for c in candidate_configs(config_schema, seed) if c not in tried]
            if untried:
                reply = {"config": untried[0], "rationale": f"untried candidate; {len(tried)} tried so far"}
            else:
                reply = {"config": (best or {}).get("config", {}), "stop": True, "rationale": "no candidates left"}
        content = json.dumps(reply, sort_keys=True)
        usage = Usage(prompt_tokens=count_tokens(text) + 4 * len(messages), completion_tokens=count_tokens(content))
        return ModelResponse(text=content, usage=usage)

    @staticmethod
    def _better(a: float, b: float, target: dict[str, Any]) -> bool:
        return a < b if target.get("direction") == "minimize" else a > b

    @staticmethod
    def _reached(score: float, goal: float, target: dict[str, Any]) -> bool:
        return score <= goal if target.get("direction") == "minimize" else score >= goal


def _visible_results(messages: list[Message], score_key: str) -> list[dict[str, Any]]:
    """Results the model can see: JSON tool outputs, RESULT lines, and configs+scores that a
    summary or state message spelled out as JSON objects."""
    found = []
    decoder = json.JSONDecoder()
    for message in messages:
        text = message.content
        at = text.find("{")
        while at >= 0:
            try:
                value, end = decoder.raw_decode(text[at:])
            except json.JSONDecodeError:
                at = text.find("{", at + 1)
                continue
            if isinstance(value, dict) and isinstance(value.get("config"), dict) and \
                    isinstance(value.get(score_key, value.get("score")), (int, float)):
                found.append({"config": value["config"], "score": value.get(score_key, value.get("score"))})
            at = text.find("{", at + end)
    return found


class React(Model):
    """Agentic-mode model: looks around, optionally clarifies, tries untried configurations with
    the bundle's apply tool, keeps its best and submits at the target. Decides from `messages`."""

    name = "scripted:react"

    def complete(self, messages: list[Message], tools: list[ToolSchema] | None = None,
                 response_schema: dict[str, Any] | None = None, *, deadline: float | None = None) -> ModelResponse:
        prompt_tokens = sum(count_tokens(m.content) + 4 for m in messages)
        if not tools:  # a summarisation request
            text = self._summary(messages)
            return ModelResponse(text=text, usage=Usage(prompt_tokens, count_tokens(text)))
        target = next((t for m in messages if (t := _json_after(TARGET_MARK, m.content))), {}) or {}
        score_key, apply_tool = target.get("score_key", "score"), target.get("apply_tool")
        calls = [c for m in messages if m.role == "assistant" for c in m.tool_calls]
        names = [c.name for c in calls]
        system = next((m.content for m in messages if m.role == "system"), "")
        results = _visible_results(messages, score_key)
        best = None
        for result in results:
            if best is None or HillClimb._better(result["score"], best["score"], target):
                best = result
        tried = [c.arguments.get("config") for c in calls if c.name == apply_tool and isinstance(c.arguments, dict)]
        tried += [r["config"] for r in results]
        tool_by_name = {t.name: t for t in tools}
        if "before experimenting" in system and "clarify" not in names and \
                not any(m.kind == "hints" for m in messages):
            call = ("clarify", {"question": "Which metric is used, and what score is the target?"})
        elif "exec" not in names:
            call = ("exec", {"command": "ls -la && cat config.json"})
        elif best is not None and target.get("goal") is not None and \
                HillClimb._reached(best["score"], target["goal"], target):
            last = next((c.arguments for c in reversed(calls) if c.name == apply_tool), None)
            call = ("submit", {"summary": f"best {score_key} {best['score']}"}) \
                if isinstance(last, dict) and last.get("config") == best["config"] \
                else (apply_tool, {"config": best["config"]})
        else:
            schema = tool_by_name[apply_tool].parameters["properties"]["config"] if apply_tool in tool_by_name else {}
            untried = [c for c in candidate_configs(schema, int(target.get("seed", 0))) if c not in tried]
            if untried and apply_tool:
                call = (apply_tool, {"config": untried[0]})
            elif best is not None:
                call = ("submit", {"summary": "no candidates left"})
            else:
                call = ("submit", {"summary": "nothing to try"})
        name, arguments = call
        text = f"Next: {name}."
        digest = hashlib.sha1(f"{len(messages)}:{json.dumps(arguments, sort_keys=True)}".encode()).hexdigest()
        tool_call = ToolCall(id=f"call_{digest[:12]}", name=name, arguments=arguments)
        completion = count_tokens(text) + count_tokens(json.dumps(arguments))
        return ModelResponse(text=text, usage=Usage(prompt_tokens, completion), tool_calls=[tool_call])

    @staticmethod
    def _summary(messages: list[Message]) -> str:
        lines = []
        for message in messages:
            for call in message.tool_calls:
                lines.append(f"called {call.name} {json.dumps(call.arguments, sort_keys=True)}")
            if message.role == "tool":
                lines.append(f"result: {message.content[:300]}")
        return "\n".join(lines) or "nothing yet"


SCRIPTED_MODELS: dict[str, type[Model]] = {"hill_climb": HillClimb, "react": React}

__all__ = ["HillClimb", "React", "SCRIPTED_MODELS", "candidate_configs", "TARGET_MARK", "RESULT_MARK"]
