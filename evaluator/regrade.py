"""Verifying a leaderboard submission on this machine: the checks that read its files
(analysis/verification.py), then a fresh grade of every episode it claims, compared with its claims.

Kept out of `analysis/`, which only reads finished runs: re-grading builds images and starts
grading sandboxes (episode/grading.py's `regrade_folder`)."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Callable

from .analysis.submission import ARTEFACTS_DIR, SUBMISSION_FILE, medal_of
from .analysis.verification import SubmissionCheck, check_submission, scores_close
from .bundles.data import PreparedData, prepare_data
from .bundles.manifest import Bundle
from .episode.context import check_output
from .episode.grading import GradeOutcome, regrade_folder
from .episode.judging import judge
from .errors import CtxevalError
from .sandbox import provider
from .sandbox.defaults import LABEL_RUN

LABEL_PREFIX = "leaderboard-"  # the run label of re-grading sandboxes (`ctxeval clean` finds them by it)

Log = Callable[[str], None]
ImageFor = Callable[[Bundle], "str | None"]


def verify_submission(folder: str | Path, backend: str = "docker", *, bundles_root: Path | None = None,
                      image_for: ImageFor | None = None, regrade: bool = True,
                      log: Log | None = None) -> list[str]:
    """Every reason to reject the submission in `folder`; empty means accepted.

    A submission that is unreadable or breaks its schema stops at the file checks. Otherwise every
    check runs, and every episode whose bundle matches and whose artefacts match their digest is
    re-graded. Failures of this machine (no engine, no data) raise CtxevalError."""
    check = check_submission(folder, bundles_root=bundles_root)
    if not check.checked or not regrade:
        return check.reasons
    return check.reasons + regrade_claims(check, backend, image_for or default_image, log or (lambda message: None))


def default_image(bundle: Bundle) -> str | None:
    from .images import ImageBuilder
    return ImageBuilder().bundle_image(bundle).tag


def regrade_claims(check: SubmissionCheck, backend: str, image_for: ImageFor, log: Log) -> list[str]:
    """Re-grade every re-gradable episode and name each claim (score, success, medal) it contradicts."""
    assert check.document is not None
    labels = {LABEL_RUN: f"{LABEL_PREFIX}{secrets.token_hex(4)}"}
    prepared: dict[str, PreparedData] = {}
    images: dict[str, str | None] = {}
    reasons: list[str] = []
    for i, episode in enumerate(check.document["episodes"]):
        bundle = check.bundles.get(episode["bundle"])
        if bundle is None or i not in check.regradable:
            continue
        if bundle.id not in prepared:
            prepared[bundle.id] = prepare_data(bundle)
            images[bundle.id] = image_for(bundle) if provider(backend).needs_image else None
        path = check.folder / ARTEFACTS_DIR / episode["episode_id"]
        log(f"re-grading {episode['episode_id']} ({backend})")
        outcome = _regrade_one(bundle, backend, images[bundle.id], prepared[bundle.id], path, labels,
                               episode["episode_id"])
        reasons += _contradicted(bundle, episode, outcome, path, f"{SUBMISSION_FILE}: $.episodes[{i}]")
    return reasons


def _regrade_one(bundle: Bundle, backend: str, image: str | None, prepared: PreparedData, path: Path,
                 labels: dict[str, str], episode_id: str) -> GradeOutcome:
    try:
        return regrade_folder(bundle, backend, image, prepared, path, labels)
    except CtxevalError:
        raise
    except Exception as exc:  # the engine or a sandbox failed: this machine's problem, not a verdict
        raise CtxevalError(f"re-grading {episode_id} failed on this machine: {type(exc).__name__}: {exc}") from None


def _contradicted(bundle: Bundle, episode: dict[str, Any], outcome: GradeOutcome, path: Path,
                  where: str) -> list[str]:
    reasons = []
    if not scores_close(episode["score"], outcome.score):
        why = f" ({'; '.join(outcome.errors)[:300]})" if outcome.errors else ""
        reasons.append(f"{where}.score: {episode['score']} claimed, the re-grade gives {outcome.score}{why}")
    success = judge(bundle, outcome, _output_record(bundle, path)["valid"])[0] \
        if episode["status"] == "completed" else False
    if episode["success"] != success:
        reasons.append(f"{where}.success: {episode['success']} claimed, the re-grade gives {success} "
                       f"under the bundle's rule {bundle.target.success.rule}")
    medal = medal_of(outcome.grade if outcome.valid else None)
    if episode["medal"] != medal:
        reasons.append(f"{where}.medal: {episode['medal']!r} claimed, the re-grade gives {medal!r}")
    return reasons


def _output_record(bundle: Bundle, folder: Path) -> dict[str, Any]:
    """The agent's output as the submission holds it (a path inside the folder only)."""
    path = folder / bundle.output_path
    inside = path.resolve().is_relative_to(folder.resolve())
    text = path.read_text(errors="replace") if inside and path.is_file() else None
    return check_output(bundle, text)
