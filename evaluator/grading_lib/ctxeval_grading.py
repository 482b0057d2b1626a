"""What every grader needs besides its metric; standard library only.

ctxeval mounts this folder read-only in the grading sandbox and names it in $CTXEVAL_GRADING_LIB;
a grader imports it with

    sys.path.insert(0, os.environ["CTXEVAL_GRADING_LIB"])
    import ctxeval_grading as grading

and then: `grading.env_path(name)` for the folders ctxeval gives it, `grading.read_submission(path,
max_bytes)` to read the agent's file safely, `grading.make_grade(...)` / `grading.invalid_grade(...)`
for grade.json's fields, and `grading.main(metric_fn, metric=...)` as its entry point, which writes
$CTXEVAL_OUTPUT/grade.json atomically. The exit code follows the grader protocol: 0 whenever a grade
was written (an unusable submission is a grade, `valid: false` with a reason); non-zero only when
the grader cannot grade at all (missing environment or answers: a bundle or evaluator bug).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, Callable

GRADE_FILE = "grade.json"
GRADE_SCHEMA_VERSION = 1


class InvalidSubmission(Exception):
    """The submission cannot be scored; the message is the reason shown to the user. `details`
    (optional) go into the invalid grade main() writes."""

    def __init__(self, reason: str, details: dict[str, Any] | None = None):
        super().__init__(reason)
        self.details = details


class GraderError(RuntimeError):
    """The grader cannot run (environment or data problem): not the submission's fault."""


def env_path(name: str) -> Path:
    """The folder ctxeval names in environment variable `name` (CTXEVAL_WORKSPACE, ...)."""
    value = os.environ.get(name)
    if not value:
        raise GraderError(f"environment variable {name} is not set")
    return Path(value)


def read_submission(path: Path, max_bytes: int) -> str:
    """The text (UTF-8, a BOM dropped) of a file the agent wrote, read through one descriptor opened
    without following a link or blocking on a FIFO, and checked on that descriptor (no window
    between a check and the open). Anything else than a regular file of at most `max_bytes` bytes
    raises InvalidSubmission naming the file."""
    path = Path(path)
    name = path.name
    if path.is_symlink():  # said early for a clear message; the open below is what enforces it
        raise InvalidSubmission(f"{name} is a symbolic link; it must be a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InvalidSubmission(f"{name} not found in the workspace") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the workspace is the agent's: a link could point at the answers
            raise InvalidSubmission(f"{name} is a symbolic link; it must be a regular file") from None
        raise InvalidSubmission(f"{name} cannot be opened ({exc.strerror})") from None
    try:  # checked on the descriptor, before a file object is made of it (a folder cannot be one)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidSubmission(f"{name} is not a regular file")
        if info.st_size > max_bytes:
            raise InvalidSubmission(f"{name} is larger than {max_bytes} bytes")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InvalidSubmission(f"{name} is larger than {max_bytes} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidSubmission(f"{name} is not UTF-8 text") from None


def make_grade(metric: str, valid: bool, score: float | None, reason: str | None = None,
               details: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """grade.json's document (schemas: grade.schema.json); `extra` holds optional fields (`checks`)."""
    return {"schema_version": GRADE_SCHEMA_VERSION, "valid": valid, "score": score, "metric": metric,
            "reason": reason, **extra, "details": details if details is not None else {}}


def invalid_grade(metric: str, reason: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return make_grade(metric, False, None, reason, details)


def write_output(name: str, document: Any) -> Path:
    """Write `document` as JSON to $CTXEVAL_OUTPUT/name atomically: a reader never sees half of it."""
    output = env_path("CTXEVAL_OUTPUT")
    tmp = output / f".{name}.tmp"
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, output / name)
    return output / name


def write_grade(grade: dict[str, Any]) -> Path:
    return write_output(GRADE_FILE, grade)


def run(step: Callable[[], int | None], program: str = "grade.py") -> None:
    """Run one step of a grader and exit: its return code (0 for None); an exception is a grader
    failure, reported on stderr as `program: error: ...`, exit 1."""
    try:
        code = step()
    except Exception as exc:  # noqa: BLE001 - a grader failure, not a bad submission
        print(f"{program}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code or 0)


def grade_once(metric_fn: Callable[[], dict[str, Any]], metric: str) -> dict[str, Any]:
    """The grade metric_fn returns; an InvalidSubmission it raises is graded invalid with its reason."""
    try:
        return metric_fn()
    except InvalidSubmission as exc:
        return invalid_grade(metric, str(exc), exc.details)


def main(metric_fn: Callable[[], dict[str, Any]], metric: str, program: str = "grade.py") -> None:
    """A grader's entry point: grade (see grade_once), write grade.json, exit 0; exit 1 (with the
    error on stderr) when it cannot grade."""
    def step() -> None:
        write_grade(grade_once(metric_fn, metric))
    run(step, program)
