"""Agents: fixed (oracle, no-op, scripted actions) and model-driven (controller)."""
from __future__ import annotations

from pathlib import Path

from ..errors import CtxevalError
from .base import Agent

FIXED_AGENTS = ("oracle", "noop")


def create_agent(agent: str, model: str = "scripted:hill_climb", policy: str = "full_history",
                 actions: Path | None = None, mode: str = "controller") -> Agent:
    """`agent`: oracle | noop | actions (needs `actions`) | model (a model in `mode`)."""
    from .fixed import NoopAgent, OracleAgent, ScriptedActionsAgent

    if actions is not None or agent == "actions":
        if actions is None:
            raise CtxevalError("the actions agent needs --actions FILE")
        return ScriptedActionsAgent(actions)
    if agent == "oracle":
        return OracleAgent()
    if agent == "noop":
        return NoopAgent()
    if agent == "model":
        from policies import resolve_policy

        from ..models import create_model
        if mode != "controller":
            raise CtxevalError(f"mode {mode!r} is not available yet; use --mode controller")
        from .controller import ControllerAgent
        try:
            return ControllerAgent(create_model(model), resolve_policy(policy))
        except ValueError as exc:
            raise CtxevalError(str(exc)) from None
    raise CtxevalError(f"unknown agent {agent!r}: choose oracle, noop, actions or model")


__all__ = ["Agent", "create_agent"]
