"""What an imported bundle will hold, decided before anything is written: ids, success rule, medal
thresholds, raw files, the sources to copy and the libraries they need."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CtxevalError
from .medals import LEVELS, MedalThresholds
from .mlebench_source import Competition
from .sources import BASE_IMAGE_MODULES, SourceSet, closure, raw_file_names

BUNDLE_ID = re.compile(r"^[a-z][a-z0-9_]{1,62}$")  # bundle.schema.json's id pattern
KAGGLE_SLUG = re.compile(r"^[a-z0-9-]+$")  # bundle.schema.json's data.fetch.kaggle pattern
SUBMISSION_FILE = "submission.csv"
MAX_SUBMISSION_BYTES = 512 * 1024 * 1024  # the grader reads the whole file into memory
DEFAULT_REFERENCE_COMMAND = "python3 make_submission.py"


@dataclass(frozen=True)
class BundlePlan:
    competition: Competition
    bundle_id: str
    medals: MedalThresholds
    success_level: str
    raw_files: tuple[str, ...]
    kaggle: str | None
    grade_sources: SourceSet
    prepare_sources: SourceSet
    stub_modules: tuple[str, ...]
    missing_libraries: tuple[str, ...]
    reference: Path | None = None
    reference_command: str = DEFAULT_REFERENCE_COMMAND

    @property
    def threshold(self) -> float:
        return self.medals.level(self.success_level)

    def runtime_config(self) -> dict[str, Any]:
        """competition.json, read by the bundle's grade.py and prepare.py (ctxeval_mlebench)."""
        c = self.competition
        return {"competition_id": c.id, "metric": c.grader_name, "grade_fn": c.grade_fn, "preparer": c.preparer,
                "answers": c.answers, "sample_submission": c.sample_submission, "submission": SUBMISSION_FILE,
                "max_submission_bytes": MAX_SUBMISSION_BYTES, "stub_modules": list(self.stub_modules),
                "medals": self.medals.as_dict()}


def bundle_id_for(competition_id: str) -> str:
    """A bundle id (lower case, `_` for anything else, starting with a letter) for a competition id."""
    name = re.sub(r"[^a-z0-9]+", "_", competition_id.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"mle_{name}"
    return name[:63].rstrip("_")


def _raw_files(competition: Competition, given: tuple[str, ...]) -> tuple[str, ...]:
    if given:
        bad = [n for n in given if not n or "/" in n]
        if bad:
            raise CtxevalError(f"--raw-file takes file names (no folders): {', '.join(map(repr, bad))}")
        return tuple(dict.fromkeys(given))
    files, folders = raw_file_names(competition.files.prepare)
    if folders:
        raise CtxevalError(f"{competition.files.prepare} reads raw folder(s) {', '.join(folders)}: ctxeval's data "
                           "fetch copies single files only (give them with --raw-file NAME if that is enough)")
    if not files:
        raise CtxevalError(f"could not tell which raw files {competition.files.prepare} reads (it names none as "
                           "`raw / \"file\"`): give them with --raw-file NAME (repeatable)")
    return tuple(files)


def _stubs(sources: list[SourceSet], competition: Competition) -> tuple[str, ...]:
    """Libraries imported at module level by mlebench's helper modules (not the competition's own):
    placeholders stand in for them when absent (mlebench/utils.py's py7zr)."""
    own = competition.files.folder
    helpers = {f for s in sources for f in s.files if own not in f.parents}
    return tuple(sorted(set().union(*(s.libraries(helpers & s.files) for s in sources)) - BASE_IMAGE_MODULES))


def make_plan(competition: Competition, medals: MedalThresholds, *, bundle_id: str | None = None,
              success_level: str = "bronze", raw_files: tuple[str, ...] = (), reference: Path | None = None,
              reference_command: str | None = None) -> BundlePlan:
    chosen = bundle_id or bundle_id_for(competition.id)
    if not BUNDLE_ID.match(chosen):
        raise CtxevalError(f"bundle id {chosen!r} must match {BUNDLE_ID.pattern} (give another with --id)")
    if success_level not in LEVELS:
        raise CtxevalError(f"success level {success_level!r} is not one of {', '.join(LEVELS)}")
    if reference is not None and not Path(reference).is_dir():
        raise CtxevalError(f"--reference {reference}: not a folder")
    checkout, folder = competition.files.checkout, competition.files.folder
    own = sorted(folder.glob("*.py"))  # the competition's modules, imported or not (e.g. by importlib)
    grade = closure(checkout, [competition.files.grade, *own])
    prepare = closure(checkout, [competition.files.prepare, *own])
    own_libraries = grade.libraries({f for f in grade.files if folder in f.parents}) | \
        prepare.libraries({f for f in prepare.files if folder in f.parents})
    return BundlePlan(competition=competition, bundle_id=chosen, medals=medals, success_level=success_level,
                      raw_files=_raw_files(competition, raw_files),
                      kaggle=competition.id if KAGGLE_SLUG.match(competition.id) else None,
                      grade_sources=grade, prepare_sources=prepare, stub_modules=_stubs([grade, prepare], competition),
                      missing_libraries=tuple(sorted(own_libraries - BASE_IMAGE_MODULES)),
                      reference=Path(reference).resolve() if reference is not None else None,
                      reference_command=reference_command or DEFAULT_REFERENCE_COMMAND)
