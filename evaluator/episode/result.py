"""An episode's result as typed records that write, and read back, exactly
`evaluator/schemas/episode_result.schema.json`.

The result is also a read-only mapping of that record (`result["score"]`), so code that reads
result.json files and code that holds a fresh result read them the same way.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import cached_property
from typing import Any, Iterator

SCHEMA_VERSION = 1


class Status(StrEnum):
    """Whether the evaluator ran the episode to its end (an agent's failure is still `completed`)."""

    COMPLETED = "completed"
    ERROR = "error"  # the evaluator, sandbox or model API failed: `ctxeval run --resume` runs it again


class StopReason(StrEnum):
    """Why the agent's part of an episode ended."""

    SUBMITTED = "submitted"
    MAX_STEPS = "max_steps"
    WALL_TIME = "wall_time"
    TOKENS = "token_budget"
    COST = "cost_budget"
    TARGET = "target_reached"
    MODEL = "model_stopped"
    SANDBOX_DIED = "sandbox_died"
    AGENT_ERROR = "agent_error"
    MODEL_ERROR = "model_error"
    VALID_OUTPUT = "valid_output"
    ACTIONS_DONE = "actions_exhausted"
    INVALID_PROPOSALS = "too_many_invalid_proposals"

    @property
    def is_budget(self) -> bool:
        """A limit the run set (steps, tokens, cost, wall time), as opposed to a choice or a failure."""
        return self in BUDGET_STOPS


BUDGET_STOPS = frozenset({StopReason.MAX_STEPS, StopReason.WALL_TIME, StopReason.TOKENS, StopReason.COST})


@dataclass(frozen=True)
class BundleIdentity:
    """Which bundle, grader and image the episode ran: what a re-grade must match."""

    id: str
    version: str
    bundle_hash: str
    image: str | None
    metric: str | None = None
    direction: str | None = None
    grader_hash: str | None = None
    image_hash: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "metric": self.metric, "direction": self.direction,
                "bundle_hash": self.bundle_hash, "grader_hash": self.grader_hash, "image": self.image,
                "image_hash": self.image_hash}


@dataclass(frozen=True)
class SandboxIdentity:
    backend: str
    isolated: bool
    reused: bool = False  # a warm sandbox of the run's pool, after `episodes_before` other episodes
    episodes_before: int = 0
    retired: str | None = None  # why the sandbox was stopped after this episode (None: kept warm)

    def to_record(self) -> dict[str, Any]:
        return {"backend": self.backend, "isolated": self.isolated, "reused": self.reused,
                "episodes_before": self.episodes_before, "retired": self.retired}


@dataclass(frozen=True)
class OutputCheck:
    """The agent's structured output as read from the copied-out workspace, checked against its schema."""

    path: str | None
    present: bool = False
    valid: bool = False
    errors: list[str] = field(default_factory=lambda: ["not read"])

    def to_record(self) -> dict[str, Any]:
        return {"path": self.path, "present": self.present, "valid": self.valid, "errors": list(self.errors)}


@dataclass
class EpisodeCounters:
    """The counts every episode keeps: accumulated as it runs (context.EpisodeMetrics), totalled in
    its result (EpisodeTotals)."""

    steps: int = 0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    summarizer_tokens: int = 0
    cost_usd: float = 0.0
    model_seconds: float = 0.0
    sandbox_seconds: float = 0.0


COUNTER_NAMES = tuple(f.name for f in fields(EpisodeCounters))


@dataclass
class EpisodeTotals(EpisodeCounters):
    """What the episode cost; the optional per-call series are kept as recorded."""

    wall_seconds: float = 0.0
    series: dict[str, Any] = field(default_factory=dict)  # context_tokens, iterations, context_maps, probe_*...

    def to_record(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in COUNTER_NAMES}, "wall_seconds": self.wall_seconds,
                **self.series}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "EpisodeTotals":
        named = {f.name for f in fields(cls)} - {"series"}
        return cls(**{k: v for k, v in record.items() if k in named},
                   series={k: v for k, v in record.items() if k not in named})


@dataclass(frozen=True)
class EpisodeResult(Mapping[str, Any]):
    """One episode's result (result.json)."""

    episode_id: str
    run_id: str
    bundle: BundleIdentity
    agent: dict[str, Any]  # the agent's own description: kind, mode, model, policy, actions_file, probes
    seed: int
    sandbox: SandboxIdentity
    status: Status
    stop_reason: StopReason | str
    success: bool
    score: float | None
    best_score: float | None
    output: OutputCheck
    grade: dict[str, Any] | None
    outcomes: dict[str, int]
    metrics: EpisodeTotals
    started_at: str
    finished_at: str
    error: str | None = None
    target_met: bool = False
    baseline: float | None = None
    relative_improvement: float | None = None
    grade_errors: list[str] = field(default_factory=list)
    probes: list[dict[str, Any]] | None = None  # present only when the episode asked probes
    probe_recall: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None  # present only when the agent had a memory (episode/memory.py)
    artefacts: list[str] = field(default_factory=list)
    sandbox_events: list[dict[str, Any]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_record(self) -> dict[str, Any]:
        """The schema's record, keys in the order result.json has always had them."""
        probes = {} if self.probes is None else {"probes": self.probes, "probe_recall": self.probe_recall}
        memory = {} if self.memory is None else {"memory": self.memory}
        return {
            "schema_version": self.schema_version, "episode_id": self.episode_id, "run_id": self.run_id,
            "bundle": self.bundle.to_record(), "agent": dict(self.agent), "seed": self.seed,
            "sandbox": self.sandbox.to_record(), "status": str(self.status), "stop_reason": str(self.stop_reason),
            "error": self.error, "success": self.success, "target_met": self.target_met, "score": self.score,
            "best_score": self.best_score, "baseline": self.baseline,
            "relative_improvement": self.relative_improvement, "output": self.output.to_record(),
            "grade": self.grade, "grade_errors": list(self.grade_errors), "outcomes": dict(self.outcomes),
            "metrics": self.metrics.to_record(), **probes, **memory, "artefacts": list(self.artefacts),
            "sandbox_events": list(self.sandbox_events), "started_at": self.started_at,
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "EpisodeResult":
        """A result read back from its (schema-valid) record."""
        stop = record["stop_reason"]
        return cls(
            episode_id=record["episode_id"], run_id=record["run_id"],
            bundle=BundleIdentity(**record["bundle"]), agent=dict(record["agent"]), seed=record["seed"],
            sandbox=SandboxIdentity(**record["sandbox"]), status=Status(record["status"]),
            stop_reason=StopReason(stop) if stop in StopReason._value2member_map_ else stop,
            success=record["success"], score=record["score"], best_score=record["best_score"],
            output=OutputCheck(**record["output"]), grade=record["grade"], outcomes=dict(record["outcomes"]),
            metrics=EpisodeTotals.from_record(record["metrics"]), started_at=record["started_at"],
            finished_at=record["finished_at"], error=record.get("error"),
            target_met=record.get("target_met", False), baseline=record.get("baseline"),
            relative_improvement=record.get("relative_improvement"),
            grade_errors=list(record.get("grade_errors", [])), probes=record.get("probes"),
            probe_recall=record.get("probe_recall"), memory=record.get("memory"),
            artefacts=list(record.get("artefacts", [])),
            sandbox_events=list(record.get("sandbox_events", [])),
            schema_version=record.get("schema_version", SCHEMA_VERSION))

    @cached_property
    def _record(self) -> dict[str, Any]:
        return self.to_record()

    def __getitem__(self, key: str) -> Any:
        return self._record[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._record)

    def __len__(self) -> int:
        return len(self._record)


__all__ = ["BUDGET_STOPS", "COUNTER_NAMES", "BundleIdentity", "EpisodeCounters", "EpisodeResult", "EpisodeTotals", "OutputCheck", "SandboxIdentity",
           "Status", "StopReason"]
