"""Grading in a separate sandbox that alone sees the private answers.

The grader never sees the agent's sandbox: it gets the artefacts copied out of it (vetted on the
host: regular files and folders only, within limits) as a read-only workspace, so it grades
exactly the bytes that were copied out, and nothing the agent left running can touch them. A
grader that grades by running the submission declares a run stage (grader_run.py): the agent's
code then runs in a sandbox of its own without the grader or the answers.

Warm grading: a grader that only reads files (`grader.executes_submission: false`, no run stage)
may be given a warm grading sandbox of the run's pool: between two grades every process in it is
killed and its workspace, output folder and temp space are emptied, then the next artefacts are
placed in it; each grade is a fresh grader process. A grader whose last run did not end cleanly
retires its sandbox. Any other grader gets a fresh sandbox per grade.
"""
from __future__ import annotations

import dataclasses
import json
import re
import secrets
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..bundles.data import PreparedData
from ..bundles.manifest import Bundle
from ..errors import CtxevalError
from ..jsonschemas import data_violations, project_schema, violations
from ..sandbox import Sandbox, SandboxOptions, SandboxSpec, create_sandbox, provider
from ..sandbox.artefacts import copy_folder, read_regular
from ..sandbox.base import ROLE_GRADER
from ..sandbox.defaults import LABEL_RUN
from ..sandbox.outcomes import ExecOutcome, ExecResult
from ..sandbox.pool import Lease, SandboxPool, pool_key
from .grader_run import RUN_STAGE_SLACK_SECONDS, run_stage
from .limits import GRADER_OUTPUT_BYTES, grader_limits
from .mounts import GRADER_OUTPUT, GRADING_LIB, RUN_RESULTS, bundle_scratch

GRADE_FILE = "grade.json"
PYTHONS = ("python3", "python")
SHELL_SYNTAX = ";|&<>`()*?[]\n"  # a command with any of these is left to the shell
SUBMISSION_READ_BYTES = 1 << 34  # a single submitted file graded outside an episode (grade-sample)


@dataclass
class GradeOutcome:
    grade: dict[str, Any] | None
    errors: list[str] = field(default_factory=list)
    log: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.grade is not None and not self.errors and bool(self.grade.get("valid"))

    @property
    def score(self) -> float | None:
        return self.grade.get("score") if self.valid else None


def grade_artefacts(bundle: Bundle, backend: str, image: str | None, artefacts: Path | None,
                    prepared: PreparedData, labels: dict[str, str],
                    sandbox_options: SandboxOptions | None = None, pool: SandboxPool | None = None) -> GradeOutcome:
    """Run the bundle's grader on a host folder of artefacts (None: an empty workspace), in a warm
    grading sandbox of `pool` when the grader only reads files, else in a fresh one."""
    run_seconds = bundle.grader_run.timeout_seconds + RUN_STAGE_SLACK_SECONDS if bundle.grader_run else 0.0
    spec = SandboxSpec(image=image, limits=grader_limits(bundle, run_seconds), labels=labels, role=ROLE_GRADER,
                       tools_dir=bundle.tools_dir, data_dir=prepared.public, grader_dir=bundle.grader_dir,
                       private_dir=prepared.private, workspace_files=artefacts, workspace_read_only=True,
                       scratch=(GRADER_OUTPUT, GRADING_LIB, *bundle_scratch(bundle))
                       + ((RUN_RESULTS,) if bundle.grader_run else ()))
    scratch = Path(tempfile.mkdtemp(prefix="ctxeval-grade-"))
    log: dict[str, Any] = {}
    held = _warm_grader(bundle, backend, spec, sandbox_options, pool) if pool is not None else None
    sandbox = held.sandbox if held else create_sandbox(backend, spec, sandbox_options)
    clean = False
    try:
        if held is None:
            sandbox.start()
        log["warm"] = held.reused if held else False
        if bundle.grader_run is not None:
            problem = run_stage(bundle, sandbox, backend, image, artefacts, prepared, labels, scratch, log,
                                sandbox_options)
            if problem:
                return GradeOutcome(None, [problem], log)
        run = _run_grader(bundle, sandbox, warm=held is not None, log=log)
        log["grader"] = run.to_record()
        if run.exit_code != 0:
            return GradeOutcome(None, [f"grader failed ({run.outcome}, exit {run.exit_code}): "
                                       f"{run.stderr.strip()[-1500:]}"], log)
        text = read_output_file(sandbox, GRADE_FILE, scratch / "output")
        clean = run.outcome == ExecOutcome.OK
    finally:
        if held is not None and pool is not None:
            pool.release(held, None if clean else "grader_failed")
        else:
            sandbox.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    if text is None:
        return GradeOutcome(None, [f"the grader wrote no {GRADE_FILE}"], log)
    return parse_grade(text, log)


def _warm_grader(bundle: Bundle, backend: str, spec: SandboxSpec, options: SandboxOptions | None,
                 pool: SandboxPool) -> Lease | None:
    """A warm grading sandbox holding `spec`'s artefacts, or None when this grader needs a fresh one."""
    if bundle.grader_executes_submission or not provider(backend).reusable:
        return None
    artefacts = spec.workspace_files
    spec = dataclasses.replace(spec, workspace_files=None, episodes=pool.max_episodes)
    return pool.acquire(pool_key(backend, spec, options), lambda: create_sandbox(backend, spec, options),
                        lambda sandbox: sandbox.refill(artefacts))


def _run_grader(bundle: Bundle, sandbox: Sandbox, warm: bool, log: dict[str, Any]) -> ExecResult:
    """The grader's command; in a warm sandbox, a Python grader (`python3 SCRIPT ARGS`) runs as a
    fresh process forked from one that already holds its imports."""
    program = python_program(bundle.grader_command, sandbox.environment()) if warm else None
    paths = [GRADING_LIB.mount, *(s.mount for s in bundle_scratch(bundle))]
    log["preloaded"] = bool(program and sandbox.preload(program[0], paths))
    if program and log["preloaded"]:
        return sandbox.run_preloaded(*program)
    return sandbox.exec(bundle.grader_command)


def python_program(command: str, env: dict[str, str]) -> tuple[str, list[str]] | None:
    """(script, args) of a command of the form `python3 SCRIPT ARG...` with no other shell syntax,
    its $VARIABLES expanded from `env`; None for any other command."""
    try:
        parts = shlex.split(command)
    except ValueError:
        return None
    if len(parts) < 2 or parts[0] not in PYTHONS or any(c in command for c in SHELL_SYNTAX):
        return None
    expanded = [_expand(part, env) for part in parts[1:]]
    if None in expanded or not expanded[0].startswith("/"):  # a relative script would be the workspace's
        return None
    return expanded[0], expanded[1:]  # type: ignore[return-value]


def _expand(word: str, env: dict[str, str]) -> str | None:
    def value(match: re.Match[str]) -> str:
        return env.get(match.group(1) or match.group(2), "\0")
    text = re.sub(r"\$(?:\{(\w+)\}|(\w+))", value, word)
    return None if "\0" in text or "$" in text else text


def read_output_file(sandbox: Sandbox, name: str, dest: Path) -> str | None:
    """A regular file the grader wrote under $CTXEVAL_OUTPUT (never a link, FIFO or device)."""
    data = sandbox.read_scratch(GRADER_OUTPUT, name, GRADER_OUTPUT_BYTES)
    return None if data is None else data.decode("utf-8", "replace")


def parse_grade(text: str, log: dict[str, Any] | None = None) -> GradeOutcome:
    try:
        grade = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: not JSON, an integer of > 4300 digits
        return GradeOutcome(None, [f"{GRADE_FILE} is not JSON: {exc}"], log or {})
    problems = data_violations(grade, GRADE_FILE) or violations(grade, project_schema("grade"), GRADE_FILE)
    return GradeOutcome(grade, [str(p) for p in problems], log or {})


def grade_filled_workspace(bundle: Bundle, backend: str, image: str | None, prepared: PreparedData,
                           fill: Callable[[Path], object], labels: dict[str, str] | None = None,
                           sandbox_options: SandboxOptions | None = None) -> GradeOutcome:
    """Grade a workspace made on the host outside any episode: `fill` writes it (an empty folder it
    is given), then it is graded as an episode's copied-out workspace would be, and removed."""
    folder = Path(tempfile.mkdtemp(prefix="ctxeval-grade-workspace-"))
    try:
        workspace = folder / "workspace"
        workspace.mkdir()
        fill(workspace)
        labels = labels or {LABEL_RUN: f"grade-{secrets.token_hex(4)}"}
        return grade_artefacts(bundle, backend, image, workspace, prepared, labels, sandbox_options)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def grade_submission_file(bundle: Bundle, submission: Path, backend: str, image: str | None,
                          prepared: PreparedData) -> GradeOutcome:
    """Grade one file outside any episode (as `mlebench grade-sample` does): the file is put in an
    otherwise empty workspace under the name the grader reads, then graded as an episode would be."""
    if not bundle.grader_submission:
        raise CtxevalError(f"bundle {bundle.id!r} does not name its submission file (grader.submission)")
    data = read_regular(submission, SUBMISSION_READ_BYTES) if submission.is_file() else None
    if data is None:
        raise CtxevalError(f"submission not found (or not a regular file): {submission}")
    name = bundle.grader_submission

    def put_file(workspace: Path) -> None:
        target = workspace / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    return grade_filled_workspace(bundle, backend, image, prepared, put_file)


def regrade_folder(bundle: Bundle, backend: str, image: str | None, prepared: PreparedData, folder: Path,
                   labels: dict[str, str]) -> GradeOutcome:
    """Grade a host folder as an episode's final workspace, in a fresh grading sandbox. The folder
    comes from a submission (untrusted): it is vetted like any copy-out first (regular files and
    folders only, within the artefact limits)."""
    return grade_filled_workspace(bundle, backend, image, prepared, lambda workspace: copy_folder(folder, workspace),
                                  labels)
