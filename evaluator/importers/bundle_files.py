"""Write an imported bundle's files into a folder, and put a finished folder in place atomically.

ctxeval's own files (grader, data stage, starter, runtime) come from mlebench_files/; the
competition's come from the user's checkout, copied as they are.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ..bundles.manifest import MANIFEST_NAME
from ..errors import CtxevalError
from .bundle_manifest import manifest_text
from .bundle_text import readme_text, task_text
from .plan import BundlePlan
from .sources import SourceSet

FILES_DIR = Path(__file__).resolve().parent / "mlebench_files"
RUNTIME = "ctxeval_mlebench.py"
COMPETITION_JSON = "competition.json"
SOURCE_DIR = "mlebench_src"
SAMPLE_LINE = 'SAMPLE_SUBMISSION = "sample_submission.csv"'


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def copy_sources(sources: SourceSet, target: Path) -> None:
    """The checkout files under target/ at their relative paths, with an empty __init__.py in every
    package folder that has none (a regular package: an installed mlebench cannot shadow the copy)."""
    for rel in sources.relative():
        _copy(sources.checkout / rel, target / rel)
        for depth in range(1, len(rel.parts)):
            init = target.joinpath(*rel.parts[:depth]) / "__init__.py"
            if not init.exists():
                init.write_text("")


def _runtime(plan: BundlePlan, folder: Path, wrapper: str, sources: SourceSet) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _copy(FILES_DIR / wrapper, folder / wrapper)
    _copy(FILES_DIR / RUNTIME, folder / RUNTIME)
    (folder / COMPETITION_JSON).write_text(json.dumps(plan.runtime_config(), indent=2) + "\n")
    copy_sources(sources, folder / SOURCE_DIR)


def _starter(plan: BundlePlan, folder: Path) -> None:
    text = (FILES_DIR / "make_submission.py").read_text()
    if text.count(SAMPLE_LINE) != 1:
        raise CtxevalError(f"{FILES_DIR / 'make_submission.py'} lost its line {SAMPLE_LINE!r}")
    text = text.replace(SAMPLE_LINE, f"SAMPLE_SUBMISSION = {json.dumps(plan.competition.sample_submission)}")
    folder.mkdir(parents=True)
    (folder / "make_submission.py").write_text(text)


def _dockerfile(plan: BundlePlan) -> str:
    text = (FILES_DIR / "Dockerfile").read_text()
    if plan.missing_libraries:
        text = (f"# The competition's code imports {', '.join(plan.missing_libraries)}, which the base image "
                "lacks: install them below.\n" + text)
    return text


def write_bundle(plan: BundlePlan, root: Path) -> None:
    """Every file of the bundle under `root` (created)."""
    files = plan.competition.files
    root.mkdir(parents=True)
    (root / MANIFEST_NAME).write_text(manifest_text(plan))
    (root / "task.md").write_text(task_text(plan), encoding="utf-8")
    (root / "README.md").write_text(readme_text(plan), encoding="utf-8")
    (root / "Dockerfile").write_text(_dockerfile(plan))
    _copy(FILES_DIR / "output.schema.json", root / "output.schema.json")
    for source, name in ((files.config, "config.yaml"), (files.description, "description.md"),
                         (files.leaderboard, "leaderboard.csv"), (files.checksums, "checksums.yaml")):
        _copy(source, root / "competition" / name)
    _runtime(plan, root / "grader", "grade.py", plan.grade_sources)
    _runtime(plan, root / "data", "prepare.py", plan.prepare_sources)
    _copy(files.checksums, root / "data" / "checksums.yaml")
    _copy(files.description, root / "data" / "description.md")
    _starter(plan, root / "starter")
    if plan.reference is not None:
        shutil.copytree(plan.reference, root / "reference", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def place(build: Callable[[Path], None], out: Path, force: bool) -> Path:
    """Run `build(folder)` on a staging folder beside `out`, then rename it to `out`: a reader sees
    the old bundle or the new one, never half of one. An existing `out` needs `force`."""
    out = Path(out).absolute()
    if out.exists() and not force:
        raise CtxevalError(f"{out} already exists: pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    # a hidden folder holding <name>/: the bundle registry (bundles/*/bundle.yaml) never sees it
    staging_root = Path(tempfile.mkdtemp(prefix=".ctxeval-import-", dir=out.parent))
    try:
        staged = staging_root / out.name
        build(staged)
        replaced = staging_root / ".replaced"
        if out.exists():
            os.rename(out, replaced)
        try:
            os.rename(staged, out)
        except OSError:
            if replaced.exists():
                os.rename(replaced, out)
            raise
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
    return out
