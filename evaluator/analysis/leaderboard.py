"""The leaderboard: store a submission once it is verified (evaluator/regrade.py), rank what is stored."""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import CtxevalError
from ..paths import project_or_cwd
from .run_cells import RUN_FILE
from .stats import Interval, bootstrap_mean, wilson_interval
from .submission import ARTEFACTS_DIR, MIN_SEEDS, SKIPPED, SUBMISSION_FILE
# the file checks live in verification.py (the re-grade in evaluator/regrade.py); re-exported for the CLI and tests
from .verification import read_submission, seed_shortfalls  # noqa: F401
__all__ = ["LEADERBOARD_ENV", "LeaderboardRow", "accept_submission", "entry_name", "leaderboard_dir",
           "leaderboard_table", "load_entries", "read_submission", "seed_shortfalls"]

LEADERBOARD_ENV = "CTXEVAL_LEADERBOARD_DIR"
MEDALS = ("gold", "silver", "bronze", "above_median")



def leaderboard_dir() -> Path:
    """Where accepted submissions are stored: $CTXEVAL_LEADERBOARD_DIR, else <project>/leaderboard/ in a
    checkout and ./leaderboard/ for an installed ctxeval."""
    return Path(settings.get(LEADERBOARD_ENV) or project_or_cwd("leaderboard"))


# -- storing ---------------------------------------------------------------------------------------
def entry_name(document: dict[str, Any]) -> str:
    """A stored submission's folder name: its source run and a digest of its claims (not of when
    it was built), so submitting the same arm of the same run again is a no-op."""
    claims = {k: v for k, v in document.items() if k != "created_at"}
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).hexdigest()
    return f"{document['source_run_id']}-{digest[:12]}"


def accept_submission(folder: str | Path, leaderboard: Path | None = None) -> tuple[Path, bool]:
    """Copy a verified submission into the leaderboard folder, whole or not at all.

    Returns its stored folder and whether it was new. Call evaluator.regrade.verify_submission first."""
    folder = Path(folder)
    document, problems = read_submission(folder)
    if document is None or problems:
        raise CtxevalError(f"not a valid submission: {(problems or ['?'])[0]}")
    root = Path(leaderboard or leaderboard_dir())
    target = root / entry_name(document)
    if (target / SUBMISSION_FILE).is_file():
        return target, False
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        entry = staging / target.name
        entry.mkdir()
        shutil.copy2(folder / SUBMISSION_FILE, entry / SUBMISSION_FILE)
        shutil.copy2(folder / RUN_FILE, entry / RUN_FILE)
        for episode in document["episodes"]:
            shutil.copytree(folder / ARTEFACTS_DIR / episode["episode_id"],
                            entry / ARTEFACTS_DIR / episode["episode_id"], symlinks=True,
                            ignore=shutil.ignore_patterns(*SKIPPED))
        entry.chmod(0o755)
        try:
            os.replace(entry, target)
        except OSError:  # stored meanwhile by a concurrent accept of the same submission
            if not (target / SUBMISSION_FILE).is_file():
                raise CtxevalError(f"cannot store the submission at {target}: the folder exists") from None
            return target, False
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, True


# -- ranking ---------------------------------------------------------------------------------------
@dataclass
class LeaderboardRow:
    bundle: str
    bundle_version: str
    bundle_hash: str
    metric: str
    direction: str
    rank: int
    entry: str
    model: str
    policy: str
    mode: str
    n: int
    successes: int
    success_rate: Interval  # Wilson 95 %
    scored: int  # episodes with a valid score (the mean is over these)
    mean_score: Interval  # percentile bootstrap 95 %
    medals: dict[str, int] = field(default_factory=dict)
    mean_tokens: float = 0.0
    mean_cost_usd: float = 0.0
    source_run_id: str = ""
    created_at: str = ""
    probe_recall: Interval | None = None  # mean per-episode probe recall (bootstrap 95 %); None: no probes

    def as_record(self) -> dict[str, Any]:
        record = dict(vars(self))
        record["success_rate"] = self.success_rate.as_record()
        record["mean_score"] = self.mean_score.as_record()
        record["probe_recall"] = None if self.probe_recall is None else self.probe_recall.as_record()
        return record


def load_entries(leaderboard: Path | None = None) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """The stored submissions (name, document) and the stored folders that no longer validate."""
    root = Path(leaderboard or leaderboard_dir())
    entries, problems = [], []
    if not root.is_dir():
        return entries, problems
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        document, found = read_submission(path)
        if document is None or found:
            problems.append(f"{path.name}: {(found or ['unreadable'])[0]}")
        else:
            entries.append((path.name, document))
    return entries, problems


def _rows_of(name: str, document: dict[str, Any]) -> list[LeaderboardRow]:
    rows = []
    for claim in document["bundles"]:
        episodes = [e for e in document["episodes"] if e["bundle"] == claim["id"]]
        if len({e["seed"] for e in episodes}) < MIN_SEEDS:  # not ranked (verification refuses these)
            continue
        n = len(episodes)
        successes = sum(1 for e in episodes if e["success"])
        scores = [e["score"] for e in episodes if e["score"] is not None]
        medals = {m: sum(1 for e in episodes if e["medal"] == m) for m in MEDALS}
        has_medals = any(e["medal"] is not None for e in episodes)
        rows.append(LeaderboardRow(
            bundle=claim["id"], bundle_version=claim["version"], bundle_hash=claim["bundle_hash"],
            metric=claim["metric"], direction=claim["direction"], rank=0, entry=name,
            model=document["model"], policy=document["policy"], mode=document["mode"], n=n,
            successes=successes, success_rate=wilson_interval(successes, n), scored=len(scores),
            mean_score=bootstrap_mean(scores), medals=medals if has_medals else {},
            mean_tokens=sum(e["tokens"]["total"] for e in episodes) / n,
            mean_cost_usd=math.fsum(e["cost_usd"] for e in episodes) / n,
            source_run_id=document["source_run_id"], created_at=document["created_at"],
            probe_recall=_mean_probe_recall(episodes)))
    return rows


def _mean_probe_recall(episodes: list[dict[str, Any]]) -> Interval | None:
    """Mean of the episodes' probe recall (those that answered probes); None when no episode had probes."""
    probed = [e["probe_recall"] for e in episodes if e.get("probe_recall") is not None]
    return bootstrap_mean([p["overall"] for p in probed]) if probed else None


def _rank(rows: list[LeaderboardRow]) -> list[LeaderboardRow]:
    """Best mean score first in the bundle's direction (unscored last); equal means share a rank."""
    def key(row: LeaderboardRow) -> tuple:
        mean = row.mean_score.estimate
        signed = None if mean is None else (-mean if row.direction == "maximize" else mean)
        return (signed is None, signed if signed is not None else 0.0, -row.success_rate.estimate, row.entry)
    ordered = sorted(rows, key=key)
    for position, row in enumerate(ordered, start=1):
        previous = ordered[position - 2] if position > 1 else None
        same = previous is not None and previous.mean_score.estimate == row.mean_score.estimate
        row.rank = previous.rank if same else position
    return ordered


def leaderboard_table(leaderboard: Path | None = None, bundle: str | None = None) -> list[LeaderboardRow]:
    """Rows (one per stored submission and bundle), ranked within each bundle version.

    A bundle with fewer than MIN_SEEDS seeds in a submission has no row (see seed_shortfalls).
    Submissions on different contents of a bundle (another bundle_hash) are ranked apart:
    their scores are not comparable."""
    entries, _ = load_entries(leaderboard)
    groups: dict[tuple[str, str], list[LeaderboardRow]] = {}
    for name, document in entries:
        for row in _rows_of(name, document):
            if bundle is None or row.bundle == bundle:
                groups.setdefault((row.bundle, row.bundle_hash), []).append(row)
    ranked: list[LeaderboardRow] = []
    for _, rows in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[1][0].bundle_version, kv[0][1])):
        ranked += _rank(rows)
    return ranked
