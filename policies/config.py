"""Policy configurations: presets (policies/presets/*.yaml, package data), bare policy names and YAML files.

A preset names a policy, its parameters, the context budget the agent runs with and how the agent
is told to treat clarifying questions. Files are read and validated against
policies/schemas/policy_preset.schema.json by preset_files.py; errors name the file and the JSON path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .agent_memory import AgentMemory, MemoryMasking
from .base import ContextPolicy
from .common import ParameterError, ParametrizedPolicy
from .errors import PresetError
from .full_history import FullHistory
from .hard_cap import SIZED_HARD_CAPS, HardCap
from .hybrid import Hybrid
from .llm_summary import LLMSummary
from .observation_masking import ObservationMasking
from .preset_files import read_preset_file
from .retrieval import Retrieval
from .sliding_window import SlidingWindow
from .structured_state import StructuredState
from .token_budget_packing import TokenBudgetPacking
from .tool_result_clearing import ToolResultClearing

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
CLARIFICATION = ("encourage", "neutral", "discourage")
SOURCES = ("preset", "policy", "file")

POLICIES: dict[str, type[ParametrizedPolicy]] = {cls.name: cls for cls in (
    FullHistory, SlidingWindow, ObservationMasking, ToolResultClearing, LLMSummary, StructuredState, Retrieval,
    Hybrid, TokenBudgetPacking, HardCap, *SIZED_HARD_CAPS, AgentMemory, MemoryMasking)}


@dataclass
class PolicyConfig:
    name: str
    policy: str
    params: dict[str, Any] = field(default_factory=dict)
    budget_tokens: int | None = None
    clarification: str = "neutral"
    source: str = "policy"  # preset | policy | file
    description: str = ""

    def create(self) -> ContextPolicy:
        """A fresh policy instance (policies are stateful: one per episode)."""
        return create_policy(self.policy, self.params)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "policy": self.policy, "params": self.create().params(),
                "budget_tokens": self.budget_tokens, "clarification": self.clarification, "source": self.source,
                "description": self.description}


def _policy_class(name: str) -> type[ParametrizedPolicy]:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown context policy {name!r}; known: {', '.join(sorted(POLICIES))}") from None


def create_policy(name: str, params: dict[str, Any] | None = None) -> ContextPolicy:
    """A fresh instance of a registered policy; unknown parameter names or bad values -> ValueError."""
    cls = _policy_class(name)
    params = dict(params or {})
    cls.check_param_names(params)
    try:
        return cls(**params)
    except ParameterError as exc:
        raise ParameterError(exc.param, f"{exc.reason} (context policy {name!r})") from None


def list_policies() -> list[tuple[str, str, dict[str, Any]]]:
    """(name, description, default params) of every registered policy."""
    return [(name, cls.description, cls.default_params()) for name, cls in POLICIES.items()]


def load_policy_file(path: str | Path, source: str = "file") -> PolicyConfig:
    """Read, validate and check one preset-format YAML file."""
    path = Path(path)
    document = read_preset_file(path)
    policy = document["policy"]
    if policy not in POLICIES:
        known = ", ".join(sorted(POLICIES))
        raise PresetError(path, [("$.policy", f"unknown context policy {policy!r}; known: {known}")])
    cls = POLICIES[policy]
    given = dict(document.get("params") or {})
    unknown = sorted(set(given) - set(cls.default_params()))
    if unknown:
        known = ", ".join(cls.default_params()) or "none"
        raise PresetError(path, [(f"$.params.{name}", f"unknown parameter of {policy!r} (known: {known})")
                                 for name in unknown])
    params = {**cls.default_params(), **given}
    try:
        cls(**params)
    except ParameterError as exc:
        raise PresetError(path, [(f"$.params.{exc.param}", exc.reason)]) from None
    if source == "preset" and document["name"] != path.stem:
        raise PresetError(path, [("$.name", f"a preset's name must be its file name ({path.stem!r}), "
                                            f"got {document['name']!r}")])
    return PolicyConfig(name=document["name"], policy=policy, params=params,
                        budget_tokens=document.get("budget_tokens"),
                        clarification=document.get("clarification", "neutral"), source=source,
                        description=document.get("description") or cls.description)


def _preset_paths() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PRESETS_DIR.glob("*.yaml"))}


def list_presets() -> list[PolicyConfig]:
    return [load_policy_file(path, source="preset") for path in _preset_paths().values()]


def resolve_policy(spec: str | os.PathLike[str]) -> PolicyConfig:
    """A preset name, a policy name (its defaults, no budget, neutral clarification) or the path of
    a YAML file in the preset format."""
    text = os.fspath(spec)
    presets = _preset_paths()
    if text in presets:
        return load_policy_file(presets[text], source="preset")
    if text in POLICIES:
        cls = POLICIES[text]
        return PolicyConfig(name=text, policy=text, params=cls.default_params(), budget_tokens=None,
                            clarification="neutral", source="policy", description=cls.description)
    path = Path(text)
    try:
        path = path.expanduser()
        is_file = path.is_file()
    except (OSError, RuntimeError):  # a name too long, ~user with no home
        is_file = False
    if is_file:
        return load_policy_file(path, source="file")
    hint = f"no such file: {text}; " if path.suffix in (".yaml", ".yml") or os.sep in text else ""
    raise ValueError(f"unknown context policy {text!r}: {hint}give a preset ({', '.join(presets) or 'none'}), "
                     f"a policy ({', '.join(POLICIES)}) or the path of a YAML policy file")
