"""The agent contract: act on an episode through its context until done or out of budget."""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from ..episode.context import EpisodeContext

if TYPE_CHECKING:
    from ..models.base import Model


class Agent(abc.ABC):
    kind: str = "abstract"
    mode: str = "fixed"  # fixed (no model), controller, agentic

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "mode": self.mode, "model": None, "policy": None}

    @abc.abstractmethod
    def run(self, ctx: EpisodeContext) -> None:
        """Act; return when finished (normally after ctx.submit()). EpisodeEnded (a budget, a submit) may escape."""


class ModelAgent(Agent):
    """An agent driven by a model under a context policy (controller and agentic modes)."""

    def __init__(self, model: Model, policy_config: Any):
        self.model = model
        self.policy_config = policy_config

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "mode": self.mode, "model": self.model.name,
                "policy": self.policy_config.describe()}
