"""A run: a folder with its manifest, one folder per episode and a summary; resumable."""
from __future__ import annotations

import json
import platform
import re
import secrets
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .agents.base import Agent
from .atomic import write_json_atomic
from .bundles.data import prepare_data
from .bundles.manifest import Bundle
from .episode.context import Budget
from .errors import CtxevalError
from .episode.runner import RESULT_FILE, EpisodeOptions, run_episode
from .paths import runs_dir

RUN_FILE = "run.json"
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
SUMMARY_FILE = "summary.json"


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


@dataclass
class RunPlan:
    bundle: Bundle
    agent: Agent
    seeds: list[int]
    backend: str
    run_id: str = field(default_factory=new_run_id)
    root: Path | None = None
    runtime: str | None = None
    budget: Budget | None = None

    def __post_init__(self) -> None:
        if not RUN_ID_PATTERN.fullmatch(self.run_id):
            raise CtxevalError(f"run id {self.run_id!r} must match {RUN_ID_PATTERN.pattern} (letters, digits, _ . -)")

    @property
    def run_dir(self) -> Path:
        return (self.root or runs_dir()) / self.run_id

    def episode_id(self, seed: int) -> str:
        policy = (self.agent.describe().get("policy") or {}).get("name")
        return "-".join(p for p in (self.bundle.id, self.agent.kind, policy, f"s{seed}") if p)


def finished_result(episode_dir: Path) -> dict[str, Any] | None:
    path = episode_dir / RESULT_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    scores = [r["score"] for r in results if r["score"] is not None]
    return {"episodes": len(results), "successes": sum(r["success"] for r in results),
            "errors": sum(r["status"] == "error" for r in results),
            "mean_score": sum(scores) / len(scores) if scores else None,
            "episode_ids": sorted(r["episode_id"] for r in results)}


def execute(plan: RunPlan, image: str | None, image_hash: str | None,
            on_episode: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every planned episode not finished yet; write run.json and summary.json atomically."""
    run_dir = plan.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / RUN_FILE, {
        "schema_version": 1, "run_id": plan.run_id, "ctxeval_version": __version__,
        "python": sys.version.split()[0], "platform": platform.platform(),
        "bundle": {"id": plan.bundle.id, "version": plan.bundle.version, "path": str(plan.bundle.root)},
        "agent": plan.agent.describe(), "seeds": plan.seeds, "backend": plan.backend,
        "image": image, "image_hash": image_hash, "runtime": plan.runtime,
        "budget": vars(plan.budget) if plan.budget else None,
    })
    prepared = prepare_data(plan.bundle)
    results = []
    for seed in plan.seeds:
        episode_dir = run_dir / "episodes" / plan.episode_id(seed)
        result = finished_result(episode_dir)
        if result is None:
            if episode_dir.exists():  # an interrupted attempt: keep it aside, start clean
                aborted = run_dir / "aborted" / f"{episode_dir.name}-{secrets.token_hex(3)}"
                aborted.parent.mkdir(parents=True, exist_ok=True)
                episode_dir.rename(aborted)
            options = EpisodeOptions(run_id=plan.run_id, episode_id=plan.episode_id(seed), seed=seed,
                                     backend=plan.backend, episode_dir=episode_dir, image=image,
                                     image_hash=image_hash, runtime=plan.runtime, budget=plan.budget)
            result = run_episode(plan.bundle, plan.agent, options, prepared)
        results.append(result)
        if on_episode:
            on_episode(result)
    write_json_atomic(run_dir / SUMMARY_FILE, summarize(results))
    return results
