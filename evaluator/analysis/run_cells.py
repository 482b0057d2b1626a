"""The episodes a run's run.json lays out, and which of them make up one arm.

run.json lists every episode id of the run (`episodes`) in the order its layout produces them:
bundles × agents × seeds (`matrix`, from `ctxeval run`), or one agent × `seeds` (`agent`, from the
library's `execute(RunPlan)`). An episode id ends with `-s<seed>` and starts with its bundle's id
(bundle ids have no hyphen), so every cell can be checked against the id the run gave it.

A submission is held to these cells: it must carry every episode of its arm and nothing else
(leaderboard.verify_submission), and a submission is only built from an arm whose cells have all
finished (submission.build_submission).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..jsonschemas import data_violations, violations
from ..episode_ids import episode_id

RUN_FILE = "run.json"
MAX_RUN_FILE_BYTES = 16 * 1024 * 1024  # a run.json is a few kilobytes; a bigger one is not read
_NAME = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_EPISODE_ID = "^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"  # a variant's bundle id holds @ (toy@long-...-s0)
_SEEDS = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "integer"}}
# What a submission relies on in run.json (evaluator/runs.py writes more; other fields are free).
RUN_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["run_id", "episodes"],
    "properties": {
        "run_id": {"type": "string", "pattern": _NAME},
        "episodes": {"type": "array", "uniqueItems": True, "items": {"type": "string", "pattern": _EPISODE_ID}},
        "matrix": {"type": "object", "required": ["bundles", "agents", "seeds"], "properties": {
            "bundles": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "agents": {"type": "array", "minItems": 1, "items": {"type": "object"}},
            "seeds": _SEEDS}},
        "agent": {"type": "object"},
        "seeds": _SEEDS,
        "bundles": {"type": "object"},
    },
}


@dataclass(frozen=True)
class Cell:
    """One episode the run's layout makes."""

    episode_id: str
    bundle: str  # the bundle's id (the episode id's first part)
    agent: int  # the agent's index in $.matrix.agents (0 for a library run)
    seed: int
    where: str  # the JSON path of its id in run.json


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_run_file(data: bytes, file: str = RUN_FILE) -> tuple[dict[str, Any] | None, list[str]]:
    """run.json's document, or the reasons (file + JSON path) it cannot be relied on."""
    if len(data) > MAX_RUN_FILE_BYTES:
        return None, [f"{file}: $: {len(data)} bytes, more than a run.json has ({MAX_RUN_FILE_BYTES})"]
    try:
        record = json.loads(data)
    except (ValueError, RecursionError) as exc:  # ValueError: not JSON, not UTF-8
        return None, [f"{file}: $: not JSON: {exc}"]
    problems = data_violations(record, file) or violations(record, RUN_FILE_SCHEMA, file, strict_integers=True)
    if problems:
        return None, [str(p) for p in problems]
    return record, []


def _layout(record: dict[str, Any], file: str) -> tuple[tuple[int, int, list[int]] | None, list[str]]:
    """(bundles, agents, seeds) of the run's layout."""
    if "matrix" in record:
        matrix = record["matrix"]
        return (len(matrix["bundles"]), len(matrix["agents"]), matrix["seeds"]), []
    if "agent" in record and "seeds" in record:
        return (1, 1, record["seeds"]), []
    return None, [f"{file}: $: neither a matrix ($.matrix, from `ctxeval run`) nor an agent and seeds "
                  "($.agent and $.seeds, from execute(RunPlan)): the run's episodes cannot be known"]


def _seeds_path(record: dict[str, Any]) -> str:
    return "$.matrix.seeds" if "matrix" in record else "$.seeds"


def run_cells(record: dict[str, Any], file: str = RUN_FILE) -> tuple[list[Cell], list[str]]:
    """Every episode of the run, as its layout and $.episodes give it; or why they disagree.

    `record` is a document parse_run_file accepted."""
    layout, reasons = _layout(record, file)
    if layout is None:
        return [], reasons
    n_bundles, n_agents, seeds = layout
    ids: list[str] = record["episodes"]
    size = n_bundles * n_agents * len(seeds)
    if len(ids) != size:
        return [], [f"{file}: $.episodes: {len(ids)} episode ids, but the layout has {n_bundles} bundle(s) × "
                    f"{n_agents} agent(s) × {len(seeds)} seed(s) ({_seeds_path(record)}) = {size} episodes"]
    cells = []
    for i, eid in enumerate(ids):
        seed = seeds[i % len(seeds)]
        cell = Cell(eid, eid.split("-", 1)[0], (i // len(seeds)) % n_agents, seed, f"$.episodes[{i}]")
        if not eid.endswith(f"-s{seed}") or len(eid) <= len(cell.bundle) + len(f"-s{seed}"):
            reasons.append(f"{file}: {cell.where}: {eid!r} is not an episode with seed {seed}, which the layout "
                           f"puts there ({_seeds_path(record)}[{i % len(seeds)}])")
        cells.append(cell)
    if not reasons:
        reasons += _grouping_reasons(cells, record, len(seeds) * n_agents, file)
    return (cells, []) if not reasons else ([], reasons)


def _middle(cell: Cell) -> str:
    """The agent's part of an episode id: between the bundle id and -s<seed>."""
    return cell.episode_id[len(cell.bundle) + 1:-len(f"-s{cell.seed}")]


def _entry(path: str, index: int) -> str:
    """$.matrix.bundles[1]; a library run's one bundle or agent is just $.bundles or $.agent."""
    return f"{path}[{index}]" if path.startswith("$.matrix") else path


def _one_each(pairs: list[tuple[int, str]], path: str, name: str, file: str) -> list[str]:
    """Every entry of `path` names one `name` (over its episodes), and no two entries the same."""
    groups: dict[int, set[str]] = {}
    for index, value in pairs:
        groups.setdefault(index, set()).add(value)
    reasons = [f"{file}: $.episodes: the episodes of {_entry(path, index)} name different {name}s: "
               f"{', '.join(sorted(values))}" for index, values in sorted(groups.items()) if len(values) > 1]
    named = [next(iter(values)) for values in groups.values() if len(values) == 1]
    if len(named) != len(set(named)):
        reasons.append(f"{file}: $.episodes: two entries of {path} name the same {name}")
    return reasons


def _grouping_reasons(cells: list[Cell], record: dict[str, Any], per_bundle: int, file: str) -> list[str]:
    """Each bundle of the layout names one bundle id, each agent one agent part of the ids, and
    $.bundles (when there) lists the same bundle ids."""
    bundles, agents = ("$.matrix.bundles", "$.matrix.agents") if "matrix" in record else ("$.bundles", "$.agent")
    reasons = _one_each([(i // per_bundle, c.bundle) for i, c in enumerate(cells)], bundles, "bundle", file)
    reasons += _one_each([(c.agent, _middle(c)) for c in cells], agents, "agent", file)
    listed = record.get("bundles")
    found = {cell.bundle for cell in cells}
    if isinstance(listed, dict) and set(listed) != found:
        reasons.append(f"{file}: $.bundles: lists {', '.join(sorted(listed)) or 'none'}, the episode ids name "
                       f"{', '.join(sorted(found))}")
    return reasons


def agent_episode_id(bundle: str, agent: Any, seed: int) -> str | None:
    """The id the run gives this agent's episode on `bundle` with `seed` (None: not an agent description)."""
    if not isinstance(agent, dict) or not isinstance(agent.get("policy") or {}, dict):
        return None
    try:
        return episode_id(bundle, agent, seed)
    except (TypeError, AttributeError, ValueError):  # kind, model or policy name of the wrong type
        return None


def arm_cells(cells: list[Cell], agent: Any) -> list[Cell]:
    """The cells of one agent (its description, as result.json and submission.json carry it)."""
    return [c for c in cells if c.episode_id == agent_episode_id(c.bundle, agent, c.seed)]


def seeds_by_bundle(items: list[tuple[str, int]]) -> dict[str, list[int]]:
    """bundle id -> its distinct seeds, sorted, from (bundle, seed) pairs."""
    found: dict[str, set[int]] = {}
    for bundle, seed in items:
        found.setdefault(bundle, set()).add(seed)
    return {bundle: sorted(seeds) for bundle, seeds in sorted(found.items())}
