"""Build a portable leaderboard submission from one arm (model x policy x mode) of a run.

A submission folder holds `submission.json` (schemas/submission.schema.json) and
`artefacts/<episode_id>/`, the episodes' final workspaces, so anyone holding the bundles can
re-grade every claimed score (see leaderboard.verify_submission).
"""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import write_json_atomic
from ..errors import CtxevalError
from ..hashing import iter_files
from ..jsonschemas import validate
from .loading import RunResults, arm_key, load_run

SUBMISSION_FILE = "submission.json"
ARTEFACTS_DIR = "artefacts"
WORKSPACE_DIR = "workspace"  # an episode's copied-out workspace, as the runner names it
SKIPPED = ("__pycache__", ".pytest_cache", ".mypy_cache")  # what hashing.iter_files leaves out
BUNDLE_FIELDS = ("id", "version", "bundle_hash", "grader_hash", "image", "image_hash", "metric", "direction")


@dataclass(frozen=True)
class SubmissionArm:
    """What a submission ranks: one agent mode, model and context policy (over any bundles)."""

    mode: str
    model: str
    policy: str

    @property
    def label(self) -> str:
        return f"mode={self.mode} model={self.model} policy={self.policy}"


def arm_of(result: dict[str, Any]) -> SubmissionArm:
    key = arm_key(result)
    return SubmissionArm(mode=key.mode, model=key.model, policy=key.policy)


def select_arm(results: list[dict[str, Any]], mode: str | None = None, model: str | None = None,
               policy: str | None = None) -> SubmissionArm:
    """The one arm matching the filters; an error listing the arms when none or several match."""
    arms = sorted({arm_of(r) for r in results}, key=lambda a: (a.mode, a.model, a.policy))
    if not arms:
        raise CtxevalError("the run has no finished episodes")
    matching = [a for a in arms if (mode is None or a.mode == mode) and (model is None or a.model == model)
                and (policy is None or a.policy == policy)]
    if len(matching) == 1:
        return matching[0]
    listing = "; ".join(a.label for a in arms)
    if not matching:
        raise CtxevalError(f"no arm of the run matches; its arms: {listing}")
    raise CtxevalError(f"the run has {len(matching)} matching arms, a submission is one: choose with "
                       f"--mode/--model/--policy among: {listing}")


def artefact_digest(folder: Path) -> str:
    """sha256 over a folder's files: relative names and contents (a symlink: its target).

    File modes are left out on purpose: they do not survive every way of shipping a folder,
    and the grader reads contents. The same files the sandboxes copy in (hashing.iter_files)."""
    digest = hashlib.sha256()
    if not folder.is_dir():
        return digest.hexdigest()
    for file in iter_files(folder):
        digest.update(b"file\0" + file.relative_to(folder).as_posix().encode() + b"\0")
        if file.is_symlink():
            digest.update(b"link\0" + str(file.readlink()).encode() + b"\0")
        else:
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def medal_of(grade: dict[str, Any] | None) -> str | None:
    """The medal level a grader reports in details.medal (NOMAD), else None."""
    details = (grade or {}).get("details")
    medal = details.get("medal") if isinstance(details, dict) else None
    return medal if isinstance(medal, str) else None


def compute_totals(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The totals a submission claims, from its episode entries (fsum: the order does not matter)."""
    scores: dict[str, list[float]] = {}
    for episode in episodes:
        scores.setdefault(episode["bundle"], [])
        if episode["score"] is not None:
            scores[episode["bundle"]].append(episode["score"])
    return {
        "episodes": len(episodes),
        "successes": sum(1 for e in episodes if e["success"]),
        "tokens": sum(e["tokens"]["total"] for e in episodes),
        "cost_usd": _fsum([e["cost_usd"] for e in episodes]),
        "mean_score": {b: (_mean(v) if v else None) for b, v in sorted(scores.items())},
    }


def _fsum(values: list[float]) -> float:
    try:
        return math.fsum(values)
    except OverflowError:  # beyond the float range (scores and costs near 1e308)
        return sum(float(v) for v in values)


def _mean(values: list[float]) -> float:
    try:
        return math.fsum(values) / len(values)
    except OverflowError:  # the sum overflows, the mean need not
        return _fsum([v / len(values) for v in values])


def episode_dirs(run_dir: Path) -> dict[str, Path]:
    """episode_id -> its folder, read from each result.json (not from the folder's name)."""
    import json
    found: dict[str, Path] = {}
    for path in sorted((run_dir / "episodes").glob("*/result.json")):
        try:
            found[json.loads(path.read_text())["episode_id"]] = path.parent
        except (ValueError, KeyError, TypeError):
            continue
    return found


def _bundle_record(results: list[dict[str, Any]]) -> dict[str, Any]:
    records = {tuple(sorted(r["bundle"].items())) for r in results}
    if len(records) > 1:
        raise CtxevalError(f"the episodes of bundle {results[0]['bundle']['id']!r} ran against different "
                           "bundle contents or images: submit them from separate runs")
    record = dict(results[0]["bundle"])
    if "metric" not in record or "direction" not in record:  # results written before these fields
        from ..bundles import load_bundle
        from ..paths import BUNDLES_DIR
        target = load_bundle(BUNDLES_DIR / record["id"]).target
        record.setdefault("metric", target.metric)
        record.setdefault("direction", target.direction)
    if "grader_hash" not in record:
        raise CtxevalError(f"the results of bundle {record['id']!r} carry no grader_hash (an older ctxeval)")
    record.setdefault("image_hash", None)
    return {k: record.get(k) for k in BUNDLE_FIELDS}


def _episode_entry(result: dict[str, Any], workspace: Path) -> dict[str, Any]:
    metrics = result["metrics"]
    tokens = {"prompt": metrics["prompt_tokens"], "completion": metrics["completion_tokens"],
              "summarizer": metrics.get("summarizer_tokens", 0)}
    tokens["total"] = sum(tokens.values())
    return {"episode_id": result["episode_id"], "bundle": result["bundle"]["id"], "seed": result["seed"],
            "status": result["status"], "score": result["score"], "success": result["success"],
            "tokens": tokens, "cost_usd": float(metrics["cost_usd"]), "medal": medal_of(result.get("grade")),
            "artefact_digest": artefact_digest(workspace)}


def _as_run(run: RunResults | str | Path) -> RunResults:
    loaded = run if isinstance(run, RunResults) else load_run(run)
    if loaded.invalid:
        raise CtxevalError(f"{len(loaded.invalid)} result file(s) of run {loaded.run_id} fail their schema, "
                           f"so a submission would leave episodes out: {loaded.invalid[0]}")
    return loaded


def _arm_results(run: RunResults, arm: SubmissionArm | None) -> tuple[SubmissionArm, list[dict[str, Any]]]:
    chosen = arm or select_arm(run.results)
    results = [r for r in run.results if arm_of(r) == chosen]
    if not results:
        raise CtxevalError(f"run {run.run_id} has no episodes of {chosen.label}")
    return chosen, sorted(results, key=lambda r: (r["bundle"]["id"], r["seed"], r["episode_id"]))


def build_submission(run: RunResults | str | Path, arm: SubmissionArm | None = None) -> dict[str, Any]:
    """submission.json's document for one arm of a run (the only arm when `arm` is None)."""
    loaded = _as_run(run)
    chosen, results = _arm_results(loaded, arm)
    dirs = episode_dirs(loaded.run_dir)
    by_bundle: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_bundle.setdefault(result["bundle"]["id"], []).append(result)
    seen: set[tuple[str, int]] = set()
    for result in results:
        key = (result["bundle"]["id"], result["seed"])
        if key in seen:
            raise CtxevalError(f"run {loaded.run_id} has two episodes of {chosen.label} on bundle {key[0]} "
                               f"with seed {key[1]}")
        seen.add(key)
    episodes = []
    for result in results:
        folder = dirs.get(result["episode_id"], loaded.run_dir / "episodes" / result["episode_id"])
        episodes.append(_episode_entry(result, folder / WORKSPACE_DIR))
    document = {
        "schema_version": 1,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ctxeval_version": __version__, "source_run_id": loaded.run_id,
        "model": chosen.model, "policy": chosen.policy, "mode": chosen.mode,
        "agent": results[0]["agent"],
        "bundles": [_bundle_record(group) for _, group in sorted(by_bundle.items())],
        "seeds": sorted({r["seed"] for r in results}),
        "episodes": episodes,
        "totals": compute_totals(episodes),
    }
    validate(document, "submission", SUBMISSION_FILE)
    return document


def _replace_folder(staging: Path, out_dir: Path) -> None:
    """Move a finished staging folder to `out_dir`; an earlier submission there is replaced."""
    if out_dir.exists():
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        elif (out_dir / SUBMISSION_FILE).is_file():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "previous")
            os.replace(staging, out_dir)
            shutil.rmtree(old, ignore_errors=True)
            return
        else:
            raise CtxevalError(f"{out_dir} exists and is not a submission folder: choose another --out")
    os.replace(staging, out_dir)


def write_submission(run: RunResults | str | Path, out_dir: Path,
                     arm: SubmissionArm | None = None) -> tuple[Path, dict[str, Any]]:
    """Write the submission folder (submission.json + artefacts/) whole, or not at all."""
    loaded = _as_run(run)
    document = build_submission(loaded, arm)
    dirs = episode_dirs(loaded.run_dir)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        for episode in document["episodes"]:
            source = dirs.get(episode["episode_id"], loaded.run_dir / "episodes" / episode["episode_id"])
            source = source / WORKSPACE_DIR
            target = staging / ARTEFACTS_DIR / episode["episode_id"]
            if source.is_dir():
                shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns(*SKIPPED))
            else:
                target.mkdir(parents=True)
            if artefact_digest(target) != episode["artefact_digest"]:
                raise CtxevalError(f"the workspace of {episode['episode_id']} changed while it was copied")
        write_json_atomic(staging / SUBMISSION_FILE, document)
        os.chmod(staging, 0o755)
        _replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir, document
