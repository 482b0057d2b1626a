"""The configurations a diligent offline experimenter tries, read from a tool's JSON Schema.

First every choice of the leading enum alone (e.g. each model family at its defaults), then seeded
random combinations. When the schema's descriptions say which family a parameter belongs to
("random_forest, gradient_boosting: number of trees ..."), a combination holds only that family's
parameters (a real experimenter does not pass a tree depth to a linear model).
"""
from __future__ import annotations

import math
import random
import re
from typing import Any

SENTENCE = re.compile(r"(?<=[.;])\s+")
WORD = re.compile(r"[a-z][a-z0-9_]*")
DEFAULT_COUNT = 64


def leading_enum(config_schema: dict[str, Any]) -> str | None:
    props = config_schema.get("properties", {})
    enums = [k for k, v in props.items() if "enum" in v]
    required = config_schema.get("required", [])
    return required[0] if required and required[0] in enums else next(iter(enums), None)


def family_params(config_schema: dict[str, Any]) -> dict[str, list[str]]:
    """family -> its parameters, from descriptions that name the families they apply to; {} when
    the schema does not say (then every parameter goes with every family)."""
    props = config_schema.get("properties", {})
    lead = leading_enum(config_schema)
    families = [f for f in props.get(lead, {}).get("enum", []) if isinstance(f, str)] if lead else []
    found: dict[str, list[str]] = {f: [] for f in families}
    for name, spec in props.items():
        if name == lead:
            continue
        for sentence in SENTENCE.split(str(spec.get("description", ""))):
            head, colon, _ = sentence.partition(":")
            for family in WORD.findall(head) if colon else []:
                if family in found and name not in found[family]:
                    found[family].append(name)
    return found if any(found.values()) else {}


def _sample(spec: dict[str, Any], rng: random.Random) -> Any:
    if "enum" in spec:
        return rng.choice(spec["enum"])
    lo, hi = spec["minimum"], spec["maximum"]
    kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    if "integer" in kinds:
        if lo >= 1 and hi / lo > 20:  # counts and sizes: log-uniform, as an experimenter scans them
            return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
        return rng.randint(int(lo), int(hi))
    if lo > 0 and hi / lo > 20:
        return round(math.exp(rng.uniform(math.log(lo), math.log(hi))), 4)
    return round(rng.uniform(lo, hi), 4)


def _sampleable(spec: dict[str, Any]) -> bool:
    kinds = spec.get("type") if isinstance(spec.get("type"), list) else [spec.get("type")]
    return "enum" in spec or (bool({"integer", "number"} & set(kinds)) and "minimum" in spec and "maximum" in spec)


def candidate_configs(config_schema: dict[str, Any], seed: int, count: int = DEFAULT_COUNT) -> list[dict[str, Any]]:
    """`count` distinct configurations, deterministic in `seed`: the leading enum's choices alone,
    then random combinations (of one family's parameters, when the schema names families)."""
    props = {k: v for k, v in config_schema.get("properties", {}).items() if _sampleable(v)}
    lead = leading_enum(config_schema)
    found: list[dict[str, Any]] = [{lead: value} for value in props.get(lead, {}).get("enum", [])] if lead else []
    families = family_params(config_schema)
    rng = random.Random(seed)
    for _ in range(count * 8):
        if len(found) >= count:
            break
        if families:
            family = rng.choice(sorted(families))
            config = {lead: family, **{k: _sample(props[k], rng) for k in families[family] if k in props}}
        else:
            config = {k: _sample(v, rng) for k, v in props.items()}
        if config and config not in found:
            found.append(config)
    return found[:count]
