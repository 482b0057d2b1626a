"""Agents with no model: the oracle, the no-op agent and the scripted action player.

They keep bundles honest (`ctxeval check`: the oracle must pass, the no-op must fail) and make
bundles debuggable step by step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..episode.actions import apply_action
from ..episode.context import EpisodeContext
from ..errors import CtxevalError
from ..hashing import iter_files
from ..jsonschemas import read_yaml, validate
from .base import Agent


class NoopAgent(Agent):
    """Leaves the starter workspace as it is and submits."""

    kind = "noop"

    def run(self, ctx: EpisodeContext) -> None:
        ctx.submit({"note": "no-op"})


class OracleAgent(Agent):
    """Copies the bundle's reference/ over the workspace, runs the reference command, submits."""

    kind = "oracle"

    def run(self, ctx: EpisodeContext) -> None:
        reference = ctx.bundle.reference_dir
        if reference is None:
            raise CtxevalError(f"bundle {ctx.bundle.id!r} has no workspace.reference for the oracle")
        for file in iter_files(reference):
            ctx.write_file(file.relative_to(reference).as_posix(), file.read_bytes())
        if ctx.bundle.reference_command:
            ctx.exec(ctx.bundle.reference_command)
        ctx.submit({"note": "oracle"})


class ScriptedActionsAgent(Agent):
    """Plays a fixed list of actions from a YAML/JSON file (evaluator/schemas/actions.schema.json)."""

    kind = "scripted_actions"

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            document = read_yaml(self.path)  # ValidationFailed: not UTF-8, not YAML, a key twice, not JSON data
        except OSError as exc:
            raise CtxevalError(f"{self.path}: cannot read actions file: {exc}") from None
        validate(document, "actions", self.path, strict_integers=True)
        self.actions: list[dict[str, Any]] = document["actions"]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "actions_file": str(self.path)}

    def run(self, ctx: EpisodeContext) -> None:
        for action in self.actions:
            apply_action(ctx, action)
            if "submit" in action:
                return
