"""Load and validate an experiment manifest (YAML)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ALL_PROMPTS = "all"
TOP_LEVEL_KEYS = {"experiment_id", "model", "temperature", "max_tokens", "dataset", "runs", "description"}
RUN_KEYS = {"id", "enabled", "prompts", "model", "temperature", "max_tokens", "description"}


class ConfigError(ValueError):
    """The manifest is invalid; the message says what and where."""


@dataclass(frozen=True)
class RunConfig:
    """One run with its effective settings (the run's overrides or the experiment's defaults)."""

    id: str
    enabled: bool
    prompts: tuple[str, ...] | None  # None: every dialogue, in dataset order
    model: str
    temperature: float
    max_tokens: int


@dataclass(frozen=True)
class ExperimentConfig:
    experiment_id: str
    model: str
    temperature: float
    max_tokens: int
    dataset: Path  # resolved against the manifest's folder
    runs: tuple[RunConfig, ...]
    source: Path

    def selected_runs(self) -> list[RunConfig]:
        """The enabled runs, in manifest order."""
        return [run for run in self.runs if run.enabled]

    def skipped_runs(self) -> list[RunConfig]:
        return [run for run in self.runs if not run.enabled]

    def check_prompts(self, known_ids: list[str]) -> None:
        """Raise ConfigError naming every prompt id a run lists that the dataset lacks."""
        known = set(known_ids)
        problems = []
        for run in self.runs:
            unknown = [p for p in (run.prompts or ()) if p not in known]
            if unknown:
                problems.append(f"run {run.id!r} lists unknown prompt id(s): {', '.join(unknown)}")
        if problems:
            raise ConfigError(f"{self.source}: " + "; ".join(problems))


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _temperature(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"{where} must be a number between 0 and 1, got {value!r}")
    return float(value)


def _max_tokens(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} must be a positive integer, got {value!r}")
    return value


def _run(raw: Any, index: int, defaults: dict[str, Any]) -> RunConfig:
    where = f"runs[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    unknown = sorted(set(raw) - RUN_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    run_id = _string(raw.get("id"), f"{where}.id")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled must be true or false, got {enabled!r}")
    if "prompts" not in raw:
        raise ConfigError(f"{where}: missing required key 'prompts'")
    prompts = raw["prompts"]
    if prompts == ALL_PROMPTS:
        selection = None
    elif isinstance(prompts, list) and prompts and all(isinstance(p, str) and p for p in prompts):
        selection = tuple(prompts)
    else:
        raise ConfigError(f"{where}.prompts must be \"all\" or a non-empty list of prompt ids, got {prompts!r}")
    return RunConfig(
        id=run_id, enabled=enabled, prompts=selection,
        model=_string(raw["model"], f"{where}.model") if "model" in raw else defaults["model"],
        temperature=_temperature(raw["temperature"], f"{where}.temperature") if "temperature" in raw
        else defaults["temperature"],
        max_tokens=_max_tokens(raw["max_tokens"], f"{where}.max_tokens") if "max_tokens" in raw
        else defaults["max_tokens"],
    )


def parse_config(raw: Any, source: Path) -> ExperimentConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the manifest must be a YAML mapping")
    try:
        unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(unknown)}")
        for key in ("experiment_id", "model", "temperature", "max_tokens", "dataset", "runs"):
            if key not in raw:
                raise ConfigError(f"missing required key {key!r}")
        defaults = {
            "model": _string(raw["model"], "model"),
            "temperature": _temperature(raw["temperature"], "temperature"),
            "max_tokens": _max_tokens(raw["max_tokens"], "max_tokens"),
        }
        if not isinstance(raw["runs"], list) or not raw["runs"]:
            raise ConfigError("runs must be a non-empty list")
        runs = tuple(_run(r, i, defaults) for i, r in enumerate(raw["runs"]))
        ids = [r.id for r in runs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ConfigError(f"duplicate run id(s): {', '.join(duplicates)}")
        dataset = Path(_string(raw["dataset"], "dataset"))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if not dataset.is_absolute():
        dataset = (source.parent / dataset).resolve()
    return ExperimentConfig(experiment_id=_string(raw["experiment_id"], "experiment_id"), dataset=dataset,
                            runs=runs, source=source, **defaults)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read, validate and resolve a manifest. Raises ConfigError."""
    source = Path(path)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read manifest {source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    return parse_config(raw, source)
