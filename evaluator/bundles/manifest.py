"""Typed view of a validated bundle.yaml."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Secure defaults for limits a manifest leaves out.
DEFAULT_MAX_STEPS = 30
DEFAULT_WALL_SECONDS = 1800.0
DEFAULT_EXEC_TIMEOUT_SECONDS = 120.0
DEFAULT_OUTPUT_BYTES = 64 * 1024
DEFAULT_CPUS = 1.0
DEFAULT_MEMORY_MB = 1024
DEFAULT_PIDS = 256
DEFAULT_TMPFS_MB = 256
DEFAULT_TOOL_TIMEOUT_SECONDS = 300.0
DEFAULT_GRADER_TIMEOUT_SECONDS = 600.0
VARIANT_SEPARATOR = "@"  # bundles/toy@long: the variant `long` of the bundle `toy`
MANIFEST_NAME = "bundle.yaml"  # a bundle is a folder holding this file


@dataclass(frozen=True)
class Limits:
    max_steps: int = DEFAULT_MAX_STEPS
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    wall_seconds: float = DEFAULT_WALL_SECONDS
    exec_timeout_seconds: float = DEFAULT_EXEC_TIMEOUT_SECONDS
    output_bytes: int = DEFAULT_OUTPUT_BYTES
    cpus: float = DEFAULT_CPUS
    memory_mb: int = DEFAULT_MEMORY_MB
    pids: int = DEFAULT_PIDS
    tmpfs_mb: int = DEFAULT_TMPFS_MB
    workspace_mb: int | None = None  # None: half of memory_mb (see workspace_cap_mb)

    @property
    def workspace_cap_mb(self) -> int:
        """The workspace is a size-capped tmpfs volume whose pages count against the container's
        memory limit: capped at half of it by default, a disk fill ends in ENOSPC long before the
        memory limit could take the sandbox down."""
        return self.workspace_mb or max(16, self.memory_mb // 2)

    @classmethod
    def from_manifest(cls, raw: dict[str, Any]) -> "Limits":
        return cls(**{k: v for k, v in raw.items() if k != "network"})


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]
    command: str
    timeout_seconds: float = DEFAULT_TOOL_TIMEOUT_SECONDS


@dataclass(frozen=True)
class SuccessRule:
    rule: str
    min_relative_improvement: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Target:
    metric: str
    direction: str
    success: SuccessRule
    baseline: float | None = None
    open_ended: bool = False  # the agent is not told a goal; the controller does not stop at it

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def better(self, a: float, b: float) -> bool:
        """True when score `a` is strictly better than `b`."""
        return a > b if self.maximize else a < b

    def relative_improvement(self, score: float) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        gain = score - self.baseline if self.maximize else self.baseline - score
        return gain / abs(self.baseline)

    def target_score(self) -> float | None:
        """The score the success rule asks for, where the rule names one."""
        rule = self.success
        if rule.rule == "threshold":
            return rule.threshold
        if rule.min_relative_improvement is not None and self.baseline is not None:
            delta = abs(self.baseline) * rule.min_relative_improvement
            return self.baseline + delta if self.maximize else self.baseline - delta
        return None

    def meets_target(self, score: float | None) -> bool:
        goal = self.target_score()
        if score is None or goal is None:
            return False
        return score >= goal - 1e-12 if self.maximize else score <= goal + 1e-12


@dataclass(frozen=True)
class FetchSpec:
    files: list[str]
    kaggle: str | None = None


@dataclass(frozen=True)
class DataSpec:
    prepare: list[str]
    public: str | None = None
    private: str | None = None
    context: str | None = None
    fetch: FetchSpec | None = None


@dataclass(frozen=True)
class ControllerSpec:
    proposal_schema: dict[str, Any]
    apply_tool: str
    score_key: str
    baseline_config: str | None = None


@dataclass(frozen=True)
class GraderRunSpec:
    """A grader that grades by running the submission: its plan command, and the time the whole
    run stage may take (every command of the plan together)."""

    plan: str
    timeout_seconds: float = 300.0


@dataclass(frozen=True)
class ProbeSpec:
    """A fact planted in the observation answering model call `plant_after_call`, and the
    question about it asked just before each call in `ask_before_calls`."""

    id: str
    fact: str
    plant_after_call: int
    ask_before_calls: tuple[int, ...]
    question: str
    answer_text: str | None = None
    answer_number: float | None = None
    tolerance: float = 0.0
    decisive: bool = False
    constraint: dict[str, Any] | None = None

    @classmethod
    def from_manifest(cls, raw: dict[str, Any]) -> "ProbeSpec":
        answer = raw["answer"]
        return cls(id=raw["id"], fact=raw["fact"], plant_after_call=raw["plant"]["after_call"],
                   ask_before_calls=tuple(sorted(raw["ask"]["before_calls"])), question=raw["question"],
                   answer_text=answer.get("text"),
                   answer_number=float(answer["number"]) if "number" in answer else None,
                   tolerance=float(answer.get("tolerance", 0.0)), decisive=bool(raw.get("decisive", False)),
                   constraint=dict(raw["constraint"]) if "constraint" in raw else None)


@dataclass(frozen=True)
class Bundle:
    """A loaded, validated bundle. Paths are absolute. A variant (`bundles/toy@long`) has
    `id == "toy@long"` and `variant == "long"`; its manifest is the base's with the variant's
    overrides applied, and it shares the base's image (`base_id`)."""

    root: Path
    manifest_path: Path
    raw: dict[str, Any]
    id: str
    version: str
    title: str
    task_path: Path
    dockerfile: Path
    image_context: list[Path]
    build_args: dict[str, str]
    starter_dir: Path
    reference_dir: Path | None
    reference_command: str | None
    tools_dir: Path | None
    tools: list[ToolSpec]
    data: DataSpec | None
    grader_dir: Path
    grader_command: str
    grader_timeout_seconds: float
    grader_submission: str | None
    output_path: str
    output_schema_path: Path
    output_schema: dict[str, Any]
    target: Target
    limits: Limits
    controller: ControllerSpec | None = None
    grader_run: GraderRunSpec | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    variant: str | None = None
    variants: tuple[str, ...] = ()  # the variants the manifest declares (names)
    probes: list[ProbeSpec] = field(default_factory=list)
    bundle_lib: bool = False  # its programs import ctxeval's bundle library (bundles/bundle_lib.py)

    @property
    def base_id(self) -> str:
        """The base bundle's id: images (and raw data) are per base bundle."""
        return self.id.partition(VARIANT_SEPARATOR)[0]

    @property
    def grader_executes_submission(self) -> bool:
        """Whether grading runs the submission's code (a run stage, or the manifest says so: the
        default); only a grader that reads files may grade in a warm sandbox."""
        return self.grader_run is not None or bool(self.raw.get("grader", {}).get("executes_submission", True))

    @property
    def reuse_sandbox(self) -> bool:
        """Whether a run may give this bundle's episodes warm sandboxes (manifest `sandbox.reuse`)."""
        return bool(self.raw.get("sandbox", {}).get("reuse", True))

    @property
    def task_text(self) -> str:
        return self.task_path.read_text()

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)
