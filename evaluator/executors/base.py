"""What every executor is given and must do: the jobs of a run, and the one contract."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..agents.base import Agent
from ..bundles.data import PreparedData
from ..bundles.manifest import Bundle
from ..episode.context import Budget
from ..episode.runner import EpisodeOptions
from ..interrupts import Interrupt
from ..run_files import EPISODES_DIR
from ..tracing.spans import Tracing

if TYPE_CHECKING:
    from ..sandbox.pool import SandboxPool


@dataclass
class EpisodeJob:
    """One episode to run: its bundle, seed and id, how to make its agent, its data and image."""

    bundle: Bundle
    seed: int
    episode_id: str
    make_agent: Callable[[], Agent]
    prepared: PreparedData
    image: str | None = None
    image_hash: str | None = None


@dataclass
class RunHooks:
    """Progress callbacks (called from worker threads)."""

    on_start: Callable[[EpisodeJob], None] | None = None
    on_episode: Callable[[dict[str, Any], bool], None] | None = None  # (result, resumed)


@dataclass
class Execution:
    """One run as an executor sees it: where its episodes go and the options they all share."""

    run_id: str
    run_dir: Path
    backend: str
    hooks: RunHooks
    tracing: Tracing
    interrupt: Interrupt
    trace_parent: Any = None  # the OpenTelemetry context of the run span
    runtime: str | None = None
    budget: Budget | None = None
    probes: bool | None = None
    max_parallel: int = 1
    reuse: bool = True
    reuse_limit: int = 1
    image_registry: str | None = None  # where nodes of another executor pull the run's images from
    accept_spans: Callable[[list[dict[str, Any]]], None] = field(default=lambda records: None)  # spans from elsewhere

    def episode_dir(self, job: EpisodeJob) -> Path:
        return self.run_dir / EPISODES_DIR / job.episode_id

    def options(self, job: EpisodeJob, *, episode_dir: Path | None = None, tracing: Tracing | None = None,
                trace_parent: Any = None, pool: "SandboxPool | None" = None,
                grading_pool: "SandboxPool | None" = None) -> EpisodeOptions:
        """The job's EpisodeOptions (an executor running it elsewhere gives its own folder and tracing)."""
        return EpisodeOptions(run_id=self.run_id, episode_id=job.episode_id, seed=job.seed, backend=self.backend,
                              episode_dir=episode_dir or self.episode_dir(job), image=job.image,
                              image_hash=job.image_hash, runtime=self.runtime, budget=self.budget,
                              tracing=tracing or self.tracing, trace_parent=trace_parent or self.trace_parent,
                              probes=self.probes, interrupt=self.interrupt, pool=pool, grading_pool=grading_pool)


class Executor(ABC):
    """Turns a run's pending jobs into finished results."""

    name: str = "?"

    def start(self) -> dict[str, Any]:
        """Get ready (e.g. join a cluster); what run.json records about where the run executes."""
        return {"name": self.name}

    @abstractmethod
    def execute(self, execution: Execution, pending: list[EpisodeJob], done: dict[str, dict[str, Any]]) -> None:
        """Run `pending`, adding each finished result to `done` by episode id (and calling
        hooks.on_episode) as it arrives. On an interrupt: start nothing new, let what runs end,
        set aside torn attempts, and return."""

    def interrupted(self, signum: int, run_id: str) -> None:
        """A stop signal arrived (called in the signal handler): end the sandboxes of what runs,
        so each episode in flight ends at its next action."""
        from ..sandbox.base import stop_sandboxes
        stop_sandboxes(run_id)

    def close(self) -> None:
        """Release what start() took."""
