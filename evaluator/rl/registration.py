"""Every bundle and variant of the registry as a Gymnasium environment id:

    ctxeval/<bundle>-v0             e.g. ctxeval/toy-v0, ctxeval/breast_cancer-v0
    ctxeval/<bundle>-<variant>-v0   e.g. ctxeval/toy-long-v0 (the bundle `toy@long`)

registered when `evaluator.rl` is imported (or named as `gymnasium.make("evaluator.rl:ctxeval/toy-v0")`).
`gymnasium.make(id, backend=..., reward=..., budget=..., policy=...)` passes those to BundleEnv;
`budget` may be a Budget or a dict of its fields (max_steps, max_tokens, max_cost_usd, wall_seconds).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium

from ..episode.context import Budget

NAMESPACE = "ctxeval"
VERSION = 0
ENTRY_POINT = "evaluator.rl.registration:make_env"


def env_id(bundle_id: str, variant: str | None = None) -> str:
    """`toy`, None -> ctxeval/toy-v0; `toy`, `long` -> ctxeval/toy-long-v0 (bundle ids hold no `-`)."""
    name = bundle_id if variant is None else f"{bundle_id}-{variant}"
    return f"{NAMESPACE}/{name}-v{VERSION}"


def make_env(bundle: str, budget: Budget | dict[str, Any] | None = None, **kwargs: Any) -> Any:
    from .env import BundleEnv
    if isinstance(budget, dict):
        budget = Budget(**budget)
    return BundleEnv(bundle, budget=budget, **kwargs)


def _variants(folder: Path) -> list[str]:
    """The variant names a bundle folder's manifest declares ([] if it cannot be read: the loader
    reports that when the environment is made)."""
    import yaml
    from ..bundles.manifest import MANIFEST_NAME
    try:
        raw = yaml.safe_load((folder / MANIFEST_NAME).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    variants = raw.get("variants") if isinstance(raw, dict) else None
    return [str(name) for name in variants] if isinstance(variants, dict) else []


def register_envs(root: Path | None = None) -> list[str]:
    """Register every bundle (and variant) under `root` (default: the checkout's bundles/); the ids."""
    from ..bundles.registry import bundle_registry
    ids = []
    for folder in bundle_registry(root).folders():
        refs = [(folder.name, None), *((folder.name, v) for v in _variants(folder))]
        for bundle_id, variant in refs:
            name = env_id(bundle_id, variant)
            ref = str(folder) if variant is None else f"{folder}@{variant}"
            if name not in gymnasium.registry:
                gymnasium.register(id=name, entry_point=ENTRY_POINT, kwargs={"bundle": ref})
            ids.append(name)
    return ids
