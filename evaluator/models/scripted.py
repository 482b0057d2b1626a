"""Deterministic offline models. They read only the messages they are given (never the episode),
so a context policy that drops history makes them repeat work, as a real model would."""
from __future__ import annotations

import json
import random
from typing import Any

from policies.base import Message, count_tokens

from ..episode.context import Usage
from .base import Model, ModelResponse

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

    def complete(self, messages: list[Message], response_schema: dict[str, Any] | None = None,
                 tools: list[dict[str, Any]] | None = None) -> ModelResponse:
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


SCRIPTED_MODELS: dict[str, type[Model]] = {"hill_climb": HillClimb}

__all__ = ["HillClimb", "SCRIPTED_MODELS", "candidate_configs", "TARGET_MARK", "RESULT_MARK"]
