"""Verifying a leaderboard submission: trust nothing it claims that can be recomputed.

The bundles' and graders' hashes against the bundles here, every artefact folder against its
digest, the totals against the episodes; tokens and cost cannot be recomputed (the agent is not
run again), they are only checked for consistency. These checks read files only; every episode's
score, success and medal are then compared with a fresh grade of its artefacts by
evaluator/regrade.py, which runs the graders.

Completeness: the submission carries its run's run.json (hashed in submission.json), and must hold
exactly the episodes run.json's matrix gives its arm, every one finished, with at least MIN_SEEDS
seeds per bundle, so an arm's bad seeds cannot be left out. What this cannot catch: a run.json
rewritten whole and consistently (fewer seeds, ids to match, the hash recomputed), or several
runs of which the best is submitted; see README, "Comparing, reporting, the leaderboard".
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bundles.bundle_lib import bundle_hash
from ..bundles.grading_helper import grader_hash
from ..bundles.manifest import Bundle
from ..errors import ValidationFailed
from ..hashing import iter_files
from ..jsonschemas import data_violations, project_schema, violations
from .run_cells import (MAX_RUN_FILE_BYTES, RUN_FILE, Cell, arm_cells, parse_run_file, run_cells, seeds_by_bundle,
                        sha256_bytes)
from .submission import (ARTEFACTS_DIR, MIN_SEEDS, SCHEMA_VERSION, SUBMISSION_FILE, arm_of,
                         artefact_digest, compute_totals)

SCORE_TOLERANCE = 1e-9


def read_submission(folder: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The submission document and its schema violations (file + JSON path), or why it is unreadable."""
    path = Path(folder) / SUBMISSION_FILE
    if not path.is_file():
        return None, [f"{SUBMISSION_FILE}: not found in {folder}"]
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not JSON, not UTF-8
        return None, [f"{SUBMISSION_FILE}: $: not JSON: {exc}"]
    old = _older_format(document)
    if old:
        return document, [old]
    problems = data_violations(document, SUBMISSION_FILE) or \
        violations(document, project_schema("submission"), SUBMISSION_FILE, strict_integers=True)
    return document, [str(v) for v in problems]


def _older_format(document: Any) -> str | None:
    """Why a submission of an older schema_version is refused (None: not an older one)."""
    version = document.get("schema_version") if isinstance(document, dict) else None
    if type(version) is not int or not 1 <= version < SCHEMA_VERSION:
        return None
    return (f"{SUBMISSION_FILE}: $.schema_version: {version} is an older submission format that does not carry "
            f"its run's {RUN_FILE} (so nothing shows that no seed was left out); this ctxeval reads "
            f"{SCHEMA_VERSION}: build the submission again from its run with `ctxeval submit RUN`")


def scores_close(a: float | None, b: float | None, tolerance: float = SCORE_TOLERANCE) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isinf(a) or math.isinf(b):  # an overflowing total: only the same infinity matches
        return a == b
    return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))


# -- consistency of the document itself --------------------------------------------------------
def _consistency(document: dict[str, Any]) -> list[str]:
    reasons: list[str] = []
    where = SUBMISSION_FILE
    bundle_ids = [b["id"] for b in document["bundles"]]
    for j, bundle_id in enumerate(bundle_ids):
        if bundle_ids.index(bundle_id) != j:
            reasons.append(f"{where}: $.bundles[{j}].id: bundle {bundle_id!r} is listed twice")
    seen_ids: set[str] = set()
    seen_seeds: set[tuple[str, int]] = set()
    for i, episode in enumerate(document["episodes"]):
        if episode["episode_id"] in seen_ids:
            reasons.append(f"{where}: $.episodes[{i}].episode_id: {episode['episode_id']!r} appears twice")
        seen_ids.add(episode["episode_id"])
        key = (episode["bundle"], episode["seed"])
        if key in seen_seeds:
            reasons.append(f"{where}: $.episodes[{i}]: a second episode of bundle {key[0]} with seed {key[1]}")
        seen_seeds.add(key)
        if episode["bundle"] not in bundle_ids:
            reasons.append(f"{where}: $.episodes[{i}].bundle: {episode['bundle']!r} is not in $.bundles")
        tokens = episode["tokens"]
        if tokens["total"] != tokens["prompt"] + tokens["completion"] + tokens["summarizer"]:
            reasons.append(f"{where}: $.episodes[{i}].tokens.total: {tokens['total']} is not "
                           "prompt + completion + summarizer")
        reasons += _probe_reasons(episode.get("probe_recall"), f"{where}: $.episodes[{i}].probe_recall")
        if episode["status"] != "completed":
            reasons.append(f"{where}: $.episodes[{i}].status: {episode['episode_id']!r} ended in status "
                           f"{episode['status']} (the evaluator, a sandbox or the model API failed): finish the "
                           "run with `ctxeval run --resume RUN_ID`, then submit again")
    if sorted(document["seeds"]) != sorted({e["seed"] for e in document["episodes"]}):
        reasons.append(f"{where}: $.seeds: {document['seeds']} are not the episodes' seeds")
    reasons += _claimed_arm_reasons(document) + seed_shortfalls(document) + _totals_mismatches(document)
    return reasons


def _probe_reasons(claim: dict[str, Any] | None, where: str) -> list[str]:
    """An episode's probe recall is not re-computable (the agent is not run again): only consistent."""
    if claim is None:
        return []
    answered, correct, overall = claim["answered"], claim["correct"], claim["overall"]
    if correct > answered:
        return [f"{where}.correct: {correct} correct of {answered} answered"]
    expected = correct / answered if answered else None
    if not scores_close(overall, expected):
        return [f"{where}.overall: {overall} claimed, correct / answered gives {expected}"]
    return []


def _claimed_arm_reasons(document: dict[str, Any]) -> list[str]:
    """$.model, $.policy and $.mode are what the leaderboard shows: they must be $.agent's."""
    agent = document["agent"]
    if not isinstance(agent.get("policy") or {}, dict):
        return [f"{SUBMISSION_FILE}: $.agent.policy: not a policy description (an object with a name)"]
    arm = arm_of({"agent": agent, "bundle": {"id": "-"}})
    return [f"{SUBMISSION_FILE}: $.{name}: {document[name]!r} claimed, but $.agent is {getattr(arm, name)!r}"
            for name in ("model", "policy", "mode") if document[name] != getattr(arm, name)]


def seed_shortfalls(document: dict[str, Any]) -> list[str]:
    """A reason per bundle with fewer than MIN_SEEDS seeds: the leaderboard does not rank those."""
    seeds = seeds_by_bundle([(e["bundle"], e["seed"]) for e in document["episodes"]])
    return [f"{SUBMISSION_FILE}: $.episodes: bundle {bundle!r} has {len(found)} seed(s) "
            f"({', '.join(map(str, found))}); the leaderboard ranks an arm only with at least {MIN_SEEDS} seeds "
            "per bundle (MIN_SEEDS)" for bundle, found in seeds.items() if len(found) < MIN_SEEDS]


def _totals_mismatches(document: dict[str, Any]) -> list[str]:
    claimed, actual = document["totals"], compute_totals(document["episodes"])
    reasons = []
    for name in ("episodes", "successes", "tokens"):
        if claimed[name] != actual[name]:
            reasons.append(f"{SUBMISSION_FILE}: $.totals.{name}: {claimed[name]} claimed, the episodes give "
                           f"{actual[name]}")
    if not scores_close(claimed["cost_usd"], actual["cost_usd"]):
        reasons.append(f"{SUBMISSION_FILE}: $.totals.cost_usd: {claimed['cost_usd']} claimed, the episodes give "
                       f"{actual['cost_usd']}")
    for bundle_id in sorted(set(claimed["mean_score"]) | set(actual["mean_score"])):
        if bundle_id not in claimed["mean_score"] or bundle_id not in actual["mean_score"]:
            reasons.append(f"{SUBMISSION_FILE}: $.totals.mean_score: bundle {bundle_id!r} "
                           f"{'missing' if bundle_id not in claimed['mean_score'] else 'has no episodes'}")
        elif not scores_close(claimed["mean_score"][bundle_id], actual["mean_score"][bundle_id]):
            reasons.append(f"{SUBMISSION_FILE}: $.totals.mean_score.{bundle_id}: "
                           f"{claimed['mean_score'][bundle_id]} claimed, the episodes give "
                           f"{actual['mean_score'][bundle_id]}")
    return reasons


# -- the run's matrix ----------------------------------------------------------------------------
def _read_run_file(folder: Path) -> tuple[bytes | None, list[str]]:
    path = folder / RUN_FILE
    if path.is_symlink() or not path.is_file():
        what = "a symlink, not a file" if path.is_symlink() else "not found"
        return None, [f"{RUN_FILE}: {what} in {folder}: a submission carries its run's {RUN_FILE}"]
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_RUN_FILE_BYTES + 1), []  # parse_run_file refuses a longer one
    except OSError as exc:
        return None, [f"{RUN_FILE}: cannot be read: {exc.strerror or exc}"]


def _run_file_reasons(document: dict[str, Any], folder: Path) -> list[str]:
    """run.json beside submission.json: its sha256, and the episodes its matrix gives the arm."""
    data, reasons = _read_run_file(folder)
    if data is None:
        return reasons
    digest = sha256_bytes(data)
    if digest != document["run_json_sha256"]:
        reasons.append(f"{SUBMISSION_FILE}: $.run_json_sha256: {document['run_json_sha256']} does not match "
                       f"{RUN_FILE} (sha256 {digest})")
    record, problems = parse_run_file(data)
    cells, more = run_cells(record) if record is not None else ([], [])
    if problems or more:
        return reasons + problems + more
    if record["run_id"] != document["source_run_id"]:
        reasons.append(f"{SUBMISSION_FILE}: $.source_run_id: {document['source_run_id']!r}, but {RUN_FILE} is of "
                       f"run {record['run_id']!r}")
    return reasons + _coverage_reasons(document, cells)


def _coverage_reasons(document: dict[str, Any], cells: list[Cell]) -> list[str]:
    """The submission holds exactly the episodes the matrix gives its agent, with their bundles and seeds."""
    arm = arm_cells(cells, document["agent"])
    if not arm:
        return [f"{SUBMISSION_FILE}: $.agent: {RUN_FILE} lists no episode of this agent: the submission is "
                "not of this run"]
    mine, everyone = {c.episode_id: c for c in arm}, {c.episode_id for c in cells}
    reasons = []
    for i, episode in enumerate(document["episodes"]):
        where, eid = f"{SUBMISSION_FILE}: $.episodes[{i}]", episode["episode_id"]
        cell = mine.get(eid)
        if cell is None:
            what = f"another arm's episode in {RUN_FILE}" if eid in everyone else f"not an episode {RUN_FILE} lists"
            reasons.append(f"{where}.episode_id: {eid!r} is {what}, not one of this arm's")
        elif (episode["bundle"], episode["seed"]) != (cell.bundle, cell.seed):
            reasons.append(f"{where}: bundle {episode['bundle']} seed {episode['seed']} claimed, but {RUN_FILE} "
                           f"{cell.where} ({eid}) is bundle {cell.bundle} seed {cell.seed}")
    given = {e["episode_id"] for e in document["episodes"]}
    missing = [c.episode_id for c in arm if c.episode_id not in given]
    if missing:
        reasons.append(f"{SUBMISSION_FILE}: $.episodes: {len(missing)} of the {len(arm)} episodes {RUN_FILE} gives "
                       f"this arm are missing: {', '.join(missing)}")
    bundles = {c.bundle for c in arm}
    reasons += [f"{SUBMISSION_FILE}: $.bundles[{j}].id: {claim['id']!r} is not a bundle of this arm in "
                f"{RUN_FILE}" for j, claim in enumerate(document["bundles"]) if claim["id"] not in bundles]
    return reasons


# -- the bundles here ----------------------------------------------------------------------------
def _current_bundles(document: dict[str, Any], root: Path | None) -> tuple[dict[str, Bundle], list[str]]:
    """The bundles whose identity matches the submission's claims, and the reasons for the others."""
    from ..bundles.registry import UnknownBundle, bundle_registry
    registry = bundle_registry(root)
    matching, reasons = {}, []
    for j, claim in enumerate(document["bundles"]):
        where = f"{SUBMISSION_FILE}: $.bundles[{j}]"
        try:
            bundle = registry.load_id(claim["id"])  # toy@long: the bundle toy, its variant long
        except UnknownBundle as exc:
            reasons.append(f"{where}.id: {exc}")
            continue
        except ValidationFailed as exc:
            reasons.append(f"{where}.id: bundle {claim['id']!r} here is invalid: {exc.violations[0]}")
            continue
        before = len(reasons)
        current = {"version": bundle.version, "bundle_hash": bundle_hash(bundle),
                   "grader_hash": grader_hash(bundle), "metric": bundle.target.metric,
                   "direction": bundle.target.direction}
        for name, value in current.items():
            if claim[name] != value:
                reasons.append(f"{where}.{name}: {claim[name]!r} does not match bundle {bundle.id!r} here "
                               f"({value!r})")
        if len(reasons) == before:
            matching[bundle.id] = bundle
    return matching, reasons


# -- the artefacts ---------------------------------------------------------------------------------
def _escaping_links(folder: Path) -> list[str]:
    """Symlinks pointing outside their episode's folder (a grader could follow them to answers)."""
    base = folder.resolve()
    bad = []
    for file in iter_files(folder):
        if file.is_symlink():
            target = os.readlink(file)
            resolved = (file.parent / target).resolve()
            if os.path.isabs(target) or not resolved.is_relative_to(base):
                bad.append(file.relative_to(folder).as_posix())
    return bad


def _artefact_problems(document: dict[str, Any], folder: Path) -> tuple[set[int], list[str]]:
    """Indices of episodes whose artefacts can be re-graded, and the reasons for the others."""
    root = folder / ARTEFACTS_DIR
    ok, reasons = set(), []
    expected = {e["episode_id"] for e in document["episodes"]}
    if root.is_dir():
        extra = sorted(p.name for p in root.iterdir() if p.name not in expected)
        if extra:
            reasons.append(f"{ARTEFACTS_DIR}/: entries no episode claims: {', '.join(extra)}")
    for i, episode in enumerate(document["episodes"]):
        where = f"{ARTEFACTS_DIR}/{episode['episode_id']}"
        path = root / episode["episode_id"]
        if path.is_symlink() or not path.is_dir():
            reasons.append(f"{where}: missing (episodes[{i}])")
            continue
        links = _escaping_links(path)
        if links:
            reasons.append(f"{where}: symlinks leave the folder: {', '.join(links)}")
            continue
        digest = artefact_digest(path)
        if digest != episode["artefact_digest"]:
            reasons.append(f"{where}: digest {digest} does not match $.episodes[{i}].artefact_digest "
                           f"{episode['artefact_digest']}")
            continue
        ok.add(i)
    return ok, reasons


# -- the checks that need no sandbox -----------------------------------------------------------------
@dataclass
class SubmissionCheck:
    """What reading a submission found: its document, every reason to reject it so far, and what a
    re-grade (evaluator/regrade.py) may go on to: the bundles that match here and the episodes
    whose artefacts match their digest."""

    folder: Path
    document: dict[str, Any] | None
    reasons: list[str]
    bundles: dict[str, Bundle] = field(default_factory=dict)
    regradable: set[int] = field(default_factory=set)
    checked: bool = True  # False: unreadable or against its schema, so no other check ran


def check_submission(folder: str | Path, *, bundles_root: Path | None = None) -> SubmissionCheck:
    """Every reason to reject the submission in `folder` found without running a grader.

    A submission that is unreadable or breaks its schema stops here (nothing else can be trusted).
    Otherwise every check runs; the result names what can be re-graded."""
    folder = Path(folder)
    document, reasons = read_submission(folder)
    if document is None or reasons:
        return SubmissionCheck(folder, document, reasons, checked=False)
    reasons = _consistency(document) + _run_file_reasons(document, folder)
    bundles, bundle_reasons = _current_bundles(document, bundles_root)
    indices, artefact_reasons = _artefact_problems(document, folder)
    return SubmissionCheck(folder, document, reasons + bundle_reasons + artefact_reasons, bundles, indices)
