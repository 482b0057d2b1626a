"""Hyper-parameter specs and the validation of a model configuration against them."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

DROP_KEY = "drop_features"  # config key: feature columns left out (not a model parameter)


class ConfigError(ValueError):
    """The model configuration is invalid; the message says what is wrong."""


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its kind ("int", "float" or "choice"), default, bounds and meaning."""

    kind: str
    default: Any
    low: float | None = None  # inclusive bounds for int/float
    high: float | None = None
    choices: tuple[Any, ...] = ()
    nullable: bool = False  # null (None) allowed, e.g. max_depth: null = unlimited
    help: str = ""  # what it does, for the tool's description and schema

    def describe(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(json.dumps(c) for c in self.choices)
        else:
            text = f"{'an integer' if self.kind == 'int' else 'a number'} >= {self.low:g} and <= {self.high:g}"
        return text + (" or null" if self.nullable else "")

    def check(self, family: str, name: str, value: Any) -> Any:
        """The value if valid (ints accepted for floats, returned as float); else ConfigError."""
        if value is None and self.nullable:
            return None
        if self.kind == "choice":
            ok = value in self.choices and not isinstance(value, bool)
        elif self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            value = float(value) if ok else value
        if ok and self.kind != "choice":
            ok = self.low <= value <= self.high
        if not ok:
            raise ConfigError(f"{family}: {name} must be {self.describe()}, got {json.dumps(value)}")
        return value


def validate_config(config: Any, families: dict[str, dict[str, Param]]) -> dict[str, Any]:
    """`config` checked against the allowed families, with every hyper-parameter filled in
    (defaults for the missing); `drop_features` kept when given."""
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a JSON object, got {json.dumps(config)}")
    family = config.get("model")
    if family not in families:
        raise ConfigError(f"config.model must be one of {', '.join(families)}, got {json.dumps(family)}")
    params = families[family]
    unknown = sorted(set(config) - set(params) - {"model", DROP_KEY})
    if unknown:
        raise ConfigError(f"{family}: unknown parameter(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(params) or '(none)'}")
    resolved: dict[str, Any] = {"model": family}
    for name, spec in params.items():
        resolved[name] = spec.check(family, name, config[name]) if name in config else spec.default
    if DROP_KEY in config:
        resolved[DROP_KEY] = check_drop_features(config[DROP_KEY])
    return resolved


def check_drop_features(value: Any, columns: list[str] | None = None) -> list[str]:
    """An array of unique feature names (checked against `columns` when given), as given."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"config.{DROP_KEY} must be an array of feature names, got {json.dumps(value)}")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise ConfigError(f"config.{DROP_KEY} names {', '.join(repeated)} more than once")
    if columns is not None:
        unknown = [v for v in value if v not in columns]
        if unknown:
            raise ConfigError(f"config.{DROP_KEY}: unknown feature column(s) {', '.join(unknown)}; "
                              f"the columns are {columns[0]}..{columns[-1]}")
        if len(value) >= len(columns):
            raise ConfigError(f"config.{DROP_KEY} leaves no feature to train on")
    return list(value)
