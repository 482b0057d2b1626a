"""Load and validate an experiment manifest (YAML).

See task.md for the manifest format. TODO: finish `parse_config`, `selected_runs`,
`skipped_runs` and `check_prompts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ALL_PROMPTS = "all"


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
        """The runs to execute."""
        # TODO: only the enabled runs, in manifest order.
        return list(self.runs)

    def skipped_runs(self) -> list[RunConfig]:
        """The runs that are not executed."""
        # TODO
        return []

    def check_prompts(self, known_ids: list[str]) -> None:
        """Raise ConfigError naming every prompt id a run lists that the dataset lacks."""
        # TODO
        raise NotImplementedError("TODO: check_prompts")


def parse_config(raw: Any, source: Path) -> ExperimentConfig:
    """Validate the parsed YAML and build the config: defaults for the runs' settings, `enabled`
    defaulting to true, `prompts: all`, the dataset path resolved against the manifest's folder."""
    # TODO: validate every field (task.md) and raise ConfigError with a clear message.
    raise NotImplementedError("TODO: parse_config")


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
