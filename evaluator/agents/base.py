"""The agent contract: act on an episode through its context until done or out of budget."""
from __future__ import annotations

import abc
from typing import Any

from ..episode.context import EpisodeContext


class Agent(abc.ABC):
    kind: str = "abstract"
    mode: str = "fixed"  # fixed (no model), controller, agentic

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "mode": self.mode, "model": None, "policy": None}

    @abc.abstractmethod
    def run(self, ctx: EpisodeContext) -> None:
        """Act; return when finished (normally after ctx.submit()). EpisodeEnded (a budget, a submit) may escape."""
