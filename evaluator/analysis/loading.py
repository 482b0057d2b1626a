"""Load a finished (or partly finished) run's episode results and group them for comparison."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import CtxevalError
from ..jsonschemas import project_schema, violations
from ..paths import runs_dir


@dataclass(frozen=True)
class ArmKey:
    """One arm of a comparison: the same bundle, agent (mode + model) and context policy."""

    bundle: str
    mode: str
    model: str
    policy: str

    @property
    def label(self) -> str:
        return f"{self.bundle} · {self.mode} · {self.model} · {self.policy}"

    def as_record(self) -> dict[str, str]:
        return {"bundle": self.bundle, "mode": self.mode, "model": self.model, "policy": self.policy}


@dataclass
class RunResults:
    run_dir: Path
    run: dict[str, Any]
    results: list[dict[str, Any]]
    invalid: list[str]  # result files that failed their schema, with the reason

    @property
    def run_id(self) -> str:
        return self.run.get("run_id") or self.run_dir.name


def arm_key(result: dict[str, Any]) -> ArmKey:
    agent = result.get("agent") or {}
    policy = (agent.get("policy") or {}).get("name") or "-"
    return ArmKey(bundle=result["bundle"]["id"], mode=agent.get("mode") or agent.get("kind") or "-",
                  model=agent.get("model") or agent.get("kind") or "-", policy=str(policy))


def resolve_run_dir(run: str | Path, root: Path | None = None) -> Path:
    """A run folder, or a run id under the runs folder."""
    path = Path(run)
    if (path / "episodes").is_dir() or (path / "run.json").exists():
        return path
    candidate = (root or runs_dir()) / str(run)
    if candidate.is_dir():
        return candidate
    raise CtxevalError(f"no run {run!r}: neither a run folder nor a run id under {root or runs_dir()}")


def load_run(run: str | Path, root: Path | None = None) -> RunResults:
    run_dir = resolve_run_dir(run, root)
    run_file = run_dir / "run.json"
    meta: dict[str, Any] = {}
    if run_file.exists():
        try:
            meta = json.loads(run_file.read_text())
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: not JSON, not UTF-8
            raise CtxevalError(f"{run_file}: not JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise CtxevalError(f"{run_file}: $: not a JSON object")
    results, invalid = [], []
    for path in sorted((run_dir / "episodes").glob("*/result.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: not JSON, not UTF-8
            invalid.append(f"{path}: not JSON: {exc}")
            continue
        problems = violations(document, project_schema("episode_result"), str(path))
        if problems:
            invalid.append("; ".join(str(p) for p in problems[:3]))
            continue
        results.append(document)
    return RunResults(run_dir, meta, results, invalid)


def group_by_arm(results: list[dict[str, Any]]) -> dict[ArmKey, list[dict[str, Any]]]:
    groups: dict[ArmKey, list[dict[str, Any]]] = {}
    for result in sorted(results, key=lambda r: (r["seed"], r["episode_id"])):
        groups.setdefault(arm_key(result), []).append(result)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0].bundle, kv[0].mode, kv[0].model, kv[0].policy)))


def total_tokens(result: dict[str, Any]) -> int:
    metrics = result["metrics"]
    return metrics["prompt_tokens"] + metrics["completion_tokens"] + metrics.get("summarizer_tokens", 0)


@dataclass(frozen=True)
class BundleTarget:
    """What a bundle's score means: its metric and whether higher or lower is better."""

    metric: str | None
    direction: str | None  # "maximize" | "minimize"; None when neither the results nor the bundle say

    @property
    def maximize(self) -> bool | None:
        return None if self.direction is None else self.direction == "maximize"


@lru_cache(maxsize=None)
def _target_from_bundle(bundle_id: str) -> BundleTarget:
    """Older results lack bundle.direction: read it from the bundle under bundles/, if still there."""
    from ..bundles.registry import bundle_registry
    try:
        bundle = bundle_registry().load_id(bundle_id)
    except CtxevalError:
        return BundleTarget(None, None)
    return BundleTarget(bundle.target.metric, bundle.target.direction)


def bundle_targets(results: list[dict[str, Any]]) -> dict[str, BundleTarget]:
    """The metric and direction of every bundle among `results`, by bundle id."""
    found: dict[str, BundleTarget] = {}
    for result in results:
        info = result["bundle"]
        bundle_id, direction = info["id"], info.get("direction")
        known = found.get(bundle_id)
        if known is not None and direction and known.direction and direction != known.direction:
            raise CtxevalError(f"bundle {bundle_id!r}: results disagree on the metric direction "
                               f"({known.direction} and {direction})")
        if known is None or (known.direction is None and direction):
            found[bundle_id] = BundleTarget(info.get("metric"), direction)
    for bundle_id, target in found.items():
        if target.direction is None:
            loaded = _target_from_bundle(bundle_id)
            found[bundle_id] = BundleTarget(target.metric or loaded.metric, loaded.direction)
    return found
