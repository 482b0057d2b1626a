"""Build a portable leaderboard submission from one arm (model x policy x mode) of a run.

A submission folder holds `submission.json` (evaluator/schemas/submission.schema.json), the run's own
`run.json` (its matrix; its sha256 is in submission.json) and `artefacts/<episode_id>/`, the
episodes' final workspaces, so anyone holding the bundles can re-grade every claimed score and see
that no episode of the arm was left out (see leaderboard.verify_submission).

Only a finished arm is submitted: every episode run.json's matrix gives it, each completed (not in
status error), with at least MIN_SEEDS seeds per bundle.
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
from ..episode.probe_recall import episode_probe_recall
from ..errors import CtxevalError
from ..hashing import iter_files
from ..jsonschemas import validate
from .loading import RunResults, arm_key, load_run
from .probes import has_probes
from .run_cells import RUN_FILE, Cell, arm_cells, parse_run_file, run_cells, seeds_by_bundle, sha256_bytes

SUBMISSION_FILE = "submission.json"
SCHEMA_VERSION = 2  # 2: submissions carry run.json and its sha256 (1 did not; no longer accepted)
# The fewest seeds per bundle the leaderboard ranks: with fewer, one lucky or unlucky seed decides a
# rank, and the Wilson and bootstrap intervals say next to nothing. `ctxeval submit` refuses such an
# arm and the leaderboard table never shows one.
MIN_SEEDS = 3
ARTEFACTS_DIR = "artefacts"
RESULT_FILE = "result.json"  # an episode's result, as the runner names it
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
    for path in sorted((run_dir / "episodes").glob(f"*/{RESULT_FILE}")):
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
        from ..bundles.registry import bundle_registry
        target = bundle_registry().load_id(record["id"]).target
        record.setdefault("metric", target.metric)
        record.setdefault("direction", target.direction)
    if "grader_hash" not in record:
        raise CtxevalError(f"the results of bundle {record['id']!r} carry no grader_hash (an older ctxeval)")
    record.setdefault("image_hash", None)
    return {k: record.get(k) for k in BUNDLE_FIELDS}


def probe_entry(result: dict[str, Any]) -> dict[str, Any]:
    """{"probe_recall": {overall, answered, correct}} for an episode with probes, else nothing
    (submissions of runs without probes stay as they were)."""
    if not has_probes(result):
        return {}
    recall = episode_probe_recall(result) or {}
    answered, correct = int(recall.get("answered") or 0), int(recall.get("correct") or 0)
    return {"probe_recall": {"overall": correct / answered if answered else None, "answered": answered,
                             "correct": correct}}


def _episode_entry(result: dict[str, Any], workspace: Path) -> dict[str, Any]:
    metrics = result["metrics"]
    tokens = {"prompt": metrics["prompt_tokens"], "completion": metrics["completion_tokens"],
              "summarizer": metrics.get("summarizer_tokens", 0)}
    tokens["total"] = sum(tokens.values())
    return {"episode_id": result["episode_id"], "bundle": result["bundle"]["id"], "seed": result["seed"],
            "status": result["status"], "score": result["score"], "success": result["success"],
            "tokens": tokens, "cost_usd": float(metrics["cost_usd"]), "medal": medal_of(result.get("grade")),
            "artefact_digest": artefact_digest(workspace), **probe_entry(result)}


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


@dataclass(frozen=True)
class RunFile:
    """The run's run.json: its exact bytes (shipped as they are, hashed) and the cells they lay out."""

    data: bytes
    run_id: str
    resumable: bool  # a `ctxeval run` matrix (resumed with --resume); else a library execute(RunPlan)
    cells: list[Cell]


def read_run_file(run: RunResults) -> RunFile:
    """The run's run.json, or an error saying why it cannot back a submission."""
    path = run.run_dir / RUN_FILE
    if not path.is_file():
        raise CtxevalError(f"{path}: not found: a submission carries its run's {RUN_FILE} (the matrix that "
                           f"says which episodes the arm has), so run {run.run_id} cannot be submitted")
    data = path.read_bytes()
    record, reasons = parse_run_file(data, str(path))
    cells, more = run_cells(record, str(path)) if record is not None else ([], [])
    if reasons or more:
        raise CtxevalError(f"run {run.run_id} cannot be submitted: {(reasons + more)[0]}")
    return RunFile(data, record["run_id"], "matrix" in record, cells)


def _check_results(run: RunFile, arm: SubmissionArm, expected: list[Cell],
                   results: list[dict[str, Any]]) -> None:
    """Every result of the arm is one of its cells, of this run, with the cell's bundle and seed."""
    cells = {cell.episode_id: cell for cell in expected}
    for result in results:
        where = f"episodes/{result['episode_id']}/{RESULT_FILE}"
        cell = cells.get(result["episode_id"])
        if cell is None:
            raise CtxevalError(f"{where}: an episode of {arm.label} that {RUN_FILE} does not list: "
                               "a submission is one run's episodes only")
        if result.get("run_id") != run.run_id:
            raise CtxevalError(f"{where}: $.run_id: {result.get('run_id')!r}, but {RUN_FILE} is of run "
                               f"{run.run_id!r}: the episode was copied in from another run")
        if (result["bundle"]["id"], result["seed"]) != (cell.bundle, cell.seed):
            raise CtxevalError(f"{where}: bundle {result['bundle']['id']} seed {result['seed']}, but {RUN_FILE} "
                               f"{cell.where} is bundle {cell.bundle} seed {cell.seed}")


def _check_seeds(run: RunFile, arm: SubmissionArm, expected: list[Cell]) -> None:
    short = {b: s for b, s in seeds_by_bundle([(c.bundle, c.seed) for c in expected]).items()
             if len(s) < MIN_SEEDS}
    if short:
        listing = "; ".join(f"bundle {b}: {len(s)} (seeds {', '.join(map(str, s))})" for b, s in short.items())
        raise CtxevalError(f"{arm.label} of run {run.run_id} has too few seeds for the leaderboard, which ranks "
                           f"an arm only with at least {MIN_SEEDS} seeds per bundle (MIN_SEEDS): {listing}. "
                           f"Start a new run with more seeds (e.g. `ctxeval run ... --seeds {MIN_SEEDS}`)")


def _check_finished(run: RunFile, arm: SubmissionArm, expected: list[Cell],
                    results: list[dict[str, Any]]) -> None:
    """Every episode of the arm has a result, and none ended in status error."""
    done = {r["episode_id"]: r for r in results}
    missing = [c.episode_id for c in expected if c.episode_id not in done]
    errored = [c.episode_id for c in expected if c.episode_id in done and done[c.episode_id]["status"] == "error"]
    if not missing and not errored:
        return
    parts = ([f"{len(missing)} without a result ({', '.join(missing)})"] if missing else []) + \
        ([f"{len(errored)} in status error ({', '.join(errored)})"] if errored else [])
    how = (f"`ctxeval run --resume {run.run_id}` (with --runs-dir if the run is not under runs/) runs exactly "
           "these again" if run.resumable else
           f"execute() the same RunPlan again (run_id={run.run_id!r}) runs exactly these again")
    raise CtxevalError(f"{arm.label} of run {run.run_id} is not finished: of its {len(expected)} episodes, "
                       f"{' and '.join(parts)}; a submission carries every episode of its arm. {how}, "
                       "then submit")


def _arm_of_run(loaded: RunResults, arm: SubmissionArm | None) -> tuple[SubmissionArm, list[dict[str, Any]], RunFile]:
    """The arm, its results and run.json, once the arm is complete and finished."""
    chosen, results = _arm_results(loaded, arm)
    run = read_run_file(loaded)
    expected = arm_cells(run.cells, results[0]["agent"])
    _check_results(run, chosen, expected, results)
    _check_seeds(run, chosen, expected)
    _check_finished(run, chosen, expected, results)
    return chosen, results, run


def _document(loaded: RunResults, chosen: SubmissionArm, results: list[dict[str, Any]],
              run: RunFile) -> dict[str, Any]:
    dirs = episode_dirs(loaded.run_dir)
    by_bundle: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_bundle.setdefault(result["bundle"]["id"], []).append(result)
    episodes = []
    for result in results:
        folder = dirs.get(result["episode_id"], loaded.run_dir / "episodes" / result["episode_id"])
        episodes.append(_episode_entry(result, folder / WORKSPACE_DIR))
    document = {
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ctxeval_version": __version__, "source_run_id": run.run_id, "run_json_sha256": sha256_bytes(run.data),
        "model": chosen.model, "policy": chosen.policy, "mode": chosen.mode,
        "agent": results[0]["agent"],
        "bundles": [_bundle_record(group) for _, group in sorted(by_bundle.items())],
        "seeds": sorted({r["seed"] for r in results}),
        "episodes": episodes,
        "totals": compute_totals(episodes),
    }
    validate(document, "submission", SUBMISSION_FILE)
    return document


def _build(run: RunResults | str | Path, arm: SubmissionArm | None) -> tuple[RunResults, dict[str, Any], RunFile]:
    loaded = _as_run(run)
    chosen, results, run_file = _arm_of_run(loaded, arm)
    return loaded, _document(loaded, chosen, results, run_file), run_file


def build_submission(run: RunResults | str | Path, arm: SubmissionArm | None = None) -> dict[str, Any]:
    """submission.json's document for one arm of a run (the only arm when `arm` is None).

    The arm must be finished and complete: every episode run.json's matrix gives it, none in status
    error, at least MIN_SEEDS seeds per bundle; else a CtxevalError says what is missing."""
    return _build(run, arm)[1]


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
    """Write the submission folder (submission.json + run.json + artefacts/) whole, or not at all."""
    loaded, document, run_file = _build(run, arm)
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
        (staging / RUN_FILE).write_bytes(run_file.data)  # the bytes its sha256 was taken of
        write_json_atomic(staging / SUBMISSION_FILE, document)
        os.chmod(staging, 0o755)
        _replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir, document
