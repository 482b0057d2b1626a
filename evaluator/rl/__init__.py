"""RL episodes: each bundle as a Gymnasium environment (env.BundleEnv, one warm sandbox per
environment), registered as `ctxeval/<bundle>[-<variant>]-v0` on import (registration); text spaces
(spaces), tool-call actions (actions), the policy's view of an episode (transcript); and an
adapter for OpenEnv's rollout loop (openenv_session, needs the `rl` extra)."""
from __future__ import annotations

from .env import BundleEnv
from .registration import NAMESPACE, env_id, make_env, register_envs

ENV_IDS = register_envs()

__all__ = ["BundleEnv", "ENV_IDS", "NAMESPACE", "env_id", "make_env", "register_envs"]
