"""Agents: fixed (oracle, no-op, scripted actions) and model-driven (controller)."""
from __future__ import annotations

from pathlib import Path

from ..errors import CtxevalError
from .base import Agent

MODES = ("controller", "agentic")
DEFAULT_MODELS = {"controller": "scripted:hill_climb", "agentic": "scripted:react"}


def create_agent(agent: str, model: str | None = None, policy: str = "full_history",
                 actions: Path | None = None, mode: str = "controller", base_url: str | None = None,
                 stop_on_valid_output: bool = False, record: Path | None = None) -> Agent:
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
        if mode not in MODES:
            raise CtxevalError(f"unknown mode {mode!r}; choose {' or '.join(MODES)}")
        try:
            policy_config = resolve_policy(policy)
        except ValueError as exc:
            raise CtxevalError(str(exc)) from None
        the_model = create_model(model or DEFAULT_MODELS[mode], base_url=base_url, record=record)
        if mode == "agentic":
            from .agentic import AgenticAgent
            return AgenticAgent(the_model, policy_config, stop_on_valid_output=stop_on_valid_output)
        from .controller import ControllerAgent
        return ControllerAgent(the_model, policy_config)
    raise CtxevalError(f"unknown agent {agent!r}: choose oracle, noop, actions or model")


__all__ = ["Agent", "create_agent"]
