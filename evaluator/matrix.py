"""A run's sweep: bundles × (policy × mode × model) agents × seeds, from CLI flags or a YAML run file.

The matrix is stored in run.json, so `ctxeval run --resume RUN_ID` rebuilds exactly the same
episodes (same ids) without the flags being repeated.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .agents import DEFAULT_MODELS, create_agent
from .agents.base import Agent
from .errors import CtxevalError
from .episode_ids import episode_id, model_slug, policy_slug  # noqa: F401 (their old home)
from .jsonschemas import read_yaml, validate

FIXED_AGENTS = ("oracle", "noop", "actions")


@dataclass(frozen=True)
class AgentSpec:
    """How to make one arm's agent; a fresh agent is made for every episode (no shared state)."""

    agent: str = "model"
    model: str | None = None
    policy: str = "full_history"
    mode: str = "controller"
    base_url: str | None = None
    stop_on_valid_output: bool = False
    actions: str | None = None

    def create(self, record: Path | None = None) -> Agent:
        model = self.model or DEFAULT_MODELS.get(self.mode)
        return create_agent(self.agent, model=model, policy=self.policy,
                            actions=Path(self.actions) if self.actions else None, mode=self.mode,
                            base_url=self.base_url, stop_on_valid_output=self.stop_on_valid_output, record=record)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunMatrix:
    bundles: tuple[str, ...]
    agents: tuple[AgentSpec, ...]
    seeds: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)  # max_parallel, backend, runtime, budget from a file

    @property
    def size(self) -> int:
        return len(self.bundles) * len(self.agents) * len(self.seeds)

    def cells(self) -> list[tuple[str, AgentSpec, int]]:
        return list(itertools.product(self.bundles, self.agents, self.seeds))

    @classmethod
    def from_options(cls, bundles: list[str], *, agent: str = "model", policies: list[str] | None = None,
                     modes: list[str] | None = None, models: list[str] | None = None, seeds: list[int],
                     base_url: str | None = None, stop_on_valid_output: bool = False,
                     actions: str | None = None) -> "RunMatrix":
        if not bundles:
            raise CtxevalError("name at least one bundle (or --file RUN.yaml, or --resume RUN_ID)")
        if actions is not None:
            agent = "actions"
        if agent in FIXED_AGENTS:  # no model, no policy: one arm
            agents = (AgentSpec(agent=agent, actions=actions),)
        else:
            agents = tuple(AgentSpec(agent=agent, model=model, policy=policy, mode=mode, base_url=base_url,
                                     stop_on_valid_output=stop_on_valid_output)
                           for policy, mode, model in itertools.product(policies or ["full_history"],
                                                                         modes or ["controller"],
                                                                         models or [None]))
        return cls(tuple(dict.fromkeys(bundles)), agents, tuple(dict.fromkeys(seeds)))

    @classmethod
    def from_file(cls, path: Path) -> "RunMatrix":
        try:
            document = read_yaml(path)  # ValidationFailed: not UTF-8, not YAML, a key twice, not JSON data
        except OSError as exc:
            raise CtxevalError(f"cannot read run file {path}: {exc}") from None
        validate(document, "run_matrix", path, strict_integers=True)
        seeds = document.get("seeds", 1)
        matrix = cls.from_options(document["bundles"], agent=document.get("agent", "model"),
                                  policies=document.get("policies"), modes=document.get("modes"),
                                  models=document.get("models"),
                                  seeds=list(range(seeds)) if isinstance(seeds, int) else seeds,
                                  base_url=document.get("base_url"),
                                  stop_on_valid_output=document.get("stop_on_valid_output", False),
                                  actions=document.get("actions"))
        options = {k: document[k] for k in ("max_parallel", "backend", "runtime", "budget", "probes", "reuse", "reuse_limit",
                                          "executor", "ray_address", "image_registry") if k in document}
        return cls(matrix.bundles, matrix.agents, matrix.seeds, options)

    def as_record(self) -> dict[str, Any]:
        return {"bundles": list(self.bundles), "agents": [a.as_record() for a in self.agents],
                "seeds": list(self.seeds)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "RunMatrix":
        return cls(tuple(record["bundles"]), tuple(AgentSpec(**a) for a in record["agents"]),
                   tuple(record["seeds"]))
