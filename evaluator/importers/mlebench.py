"""`ctxeval import mlebench`: a ctxeval bundle from one competition of the user's MLE-bench checkout.

Steps: read and check the competition folder (mlebench_source), medal thresholds from its
leaderboard (medals), decide the bundle (plan), write it into a staging folder (bundle_files),
import the competition's grade and prepare functions from the checkout and from the copies
(import_check), load the staged bundle as ctxeval would, then rename it into place.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ValidationFailed
from .bundle_files import SOURCE_DIR, place, write_bundle
from .import_check import FunctionCheck, check_functions
from .medals import MedalThresholds, leaderboard_thresholds
from .mlebench_source import read_competition
from .plan import BundlePlan, make_plan

PREPARE_PARAMS = ("raw", "public", "private")  # MLE-bench's is_valid_prepare_fn


@dataclass(frozen=True)
class ImportOptions:
    checkout: Path
    competition_id: str
    out: Path | None = None  # default: bundles/<bundle id> of the ctxeval checkout
    bundle_id: str | None = None
    force: bool = False
    reference: Path | None = None
    reference_command: str | None = None
    success_level: str = "bronze"
    raw_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportResult:
    bundle_id: str
    path: Path
    medals: MedalThresholds
    success_level: str
    threshold: float
    warnings: tuple[str, ...]


def _function_checks(plan: BundlePlan, staged: Path) -> tuple[list[FunctionCheck], list[FunctionCheck]]:
    """(checks against the checkout, checks against the bundle's copies)."""
    c = plan.competition
    checkout = [FunctionCheck(c.files.checkout, c.grade_fn, c.files.grade, "grader.grade_fn"),
                FunctionCheck(c.files.checkout, c.preparer, c.files.prepare, "preparer", PREPARE_PARAMS)]
    copies = [FunctionCheck(staged / "grader" / SOURCE_DIR, c.grade_fn, c.files.grade, "grader.grade_fn",
                            where="the copy in the bundle's grader/ (a module it imports was not found in the code)"),
              FunctionCheck(staged / "data" / SOURCE_DIR, c.preparer, c.files.prepare, "preparer", PREPARE_PARAMS,
                            where="the copy in the bundle's data/ (a module it imports was not found in the code)")]
    return checkout, copies


def _build(plan: BundlePlan, staged: Path) -> None:
    from ..bundles import load_bundle
    write_bundle(plan, staged)
    checkout, copies = _function_checks(plan, staged)
    failed = check_functions(checkout + copies, list(plan.stub_modules))
    in_checkout = [v for check, v in failed if check in checkout]  # the copies fail too when the originals do
    if failed:
        raise ValidationFailed(in_checkout or [v for _, v in failed])
    load_bundle(staged)  # the manifest ctxeval will read: schema, files, cross-references


def _warnings(plan: BundlePlan) -> tuple[str, ...]:
    notes = []
    if plan.missing_libraries:
        notes.append(f"the competition's code imports {', '.join(plan.missing_libraries)}, which ctxeval's base "
                     "image lacks: add them to the bundle's Dockerfile")
    if plan.kaggle is None:
        notes.append(f"{plan.competition.id!r} is not a Kaggle slug ctxeval accepts: fetch the raw files with "
                     f"`ctxeval data fetch {plan.bundle_id} --from DIR`")
    if plan.reference is None:
        notes.append("no --reference: the bundle has no oracle, so `ctxeval check` cannot pass until it has one")
    return tuple(notes)


def import_mlebench(options: ImportOptions) -> ImportResult:
    """Write the bundle; CtxevalError (ValidationFailed: file and key of every problem) when the
    competition cannot be imported. Nothing is left behind on failure."""
    from ..paths import BUNDLES_DIR
    competition = read_competition(Path(options.checkout), options.competition_id)
    medals = leaderboard_thresholds(competition.files.leaderboard)
    plan = make_plan(competition, medals, bundle_id=options.bundle_id, success_level=options.success_level,
                     raw_files=options.raw_files, reference=options.reference,
                     reference_command=options.reference_command)
    out = Path(options.out) if options.out is not None else BUNDLES_DIR / plan.bundle_id
    path = place(lambda staged: _build(plan, staged), out, options.force)
    return ImportResult(bundle_id=plan.bundle_id, path=path, medals=medals, success_level=plan.success_level,
                        threshold=plan.threshold, warnings=_warnings(plan))
