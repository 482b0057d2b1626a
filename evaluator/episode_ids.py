"""Episode ids: readable, unique within a run, the same however the run is resumed or read.

Apart from matrix.py (which builds agents) so that code reading finished runs can name episodes."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")


def model_slug(model: str) -> str:
    """`scripted:hill_climb` → scripted_hill_climb; `replay:/x/run1.jsonl` → replay_run1."""
    provider, _, name = model.partition(":")
    if provider == "replay":
        name = Path(name).stem
    return _UNSAFE.sub("_", f"{provider}_{name}" if name else provider).strip("_")


def policy_slug(policy: str) -> str:
    return _UNSAFE.sub("_", Path(policy).stem if policy.endswith((".yaml", ".yml")) else policy)


def episode_id(bundle_id: str, described: dict[str, Any], seed: int) -> str:
    """bundle-mode-policy-model-sN for model agents; bundle-kind-sN for fixed ones."""
    policy = (described.get("policy") or {}).get("name")
    model = described.get("model")
    parts = [bundle_id, described.get("kind"), policy_slug(policy) if policy else None,
             model_slug(model) if model else None, f"s{seed}"]
    return "-".join(p for p in parts if p)
