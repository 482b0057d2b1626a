"""Grading in a separate sandbox: the workspace read-only, private answers mounted only here."""
from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bundles.data import PreparedData
from ..bundles.manifest import Bundle
from ..jsonschemas import data_violations, project_schema, violations
from ..sandbox import SandboxLimits, SandboxSpec, create_sandbox
from ..sandbox.base import ROLE_GRADER
from ..sandbox.docker import LABEL_RUN

GRADE_FILE = "grade.json"
GRADER_OUTPUT_BYTES = 1024 * 1024


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


def grader_limits(bundle: Bundle) -> SandboxLimits:
    limits = bundle.limits
    return SandboxLimits(cpus=limits.cpus, memory_mb=limits.memory_mb, pids=limits.pids,
                         tmpfs_mb=limits.tmpfs_mb, workspace_mb=limits.workspace_cap_mb,
                         exec_timeout_seconds=bundle.grader_timeout_seconds,
                         output_bytes=GRADER_OUTPUT_BYTES, wall_seconds=bundle.grader_timeout_seconds + 120)


def grade_workspace(bundle: Bundle, backend: str, image: str | None, workspace_source: str,
                    prepared: PreparedData, labels: dict[str, str], **sandbox_options: Any) -> GradeOutcome:
    """Run the bundle's grader against a workspace (docker volume name or local folder)."""
    copy: Path | None = None
    if backend == "local":  # a local grader gets its own copy: it cannot change the agent's files
        copy = Path(tempfile.mkdtemp(prefix="ctxeval-grade-ws-"))
        shutil.copytree(workspace_source, copy, dirs_exist_ok=True, symlinks=True)
        workspace_source = str(copy)
    spec = SandboxSpec(image=image, limits=grader_limits(bundle), labels=labels, role=ROLE_GRADER,
                       tools_dir=bundle.tools_dir, data_dir=prepared.public, grader_dir=bundle.grader_dir,
                       private_dir=prepared.private, workspace_read_only=True,
                       workspace_source=workspace_source)
    sandbox = create_sandbox(backend, spec, **sandbox_options)
    try:
        sandbox.start()
        run = sandbox.exec(bundle.grader_command)
        log = {"grader": run.to_record()}
        read = sandbox.exec(f'cat "$CTXEVAL_OUTPUT/{GRADE_FILE}"', output_cap=GRADER_OUTPUT_BYTES)
    finally:
        sandbox.stop()
        if copy is not None:
            shutil.rmtree(copy, ignore_errors=True)
    if run.exit_code != 0:
        return GradeOutcome(None, [f"grader failed ({run.outcome}, exit {run.exit_code}): "
                                   f"{run.stderr.strip()[-1500:]}"], log)
    if read.exit_code != 0:
        return GradeOutcome(None, [f"the grader wrote no {GRADE_FILE}"], log)
    return parse_grade(read.stdout, log)


def parse_grade(text: str, log: dict[str, Any] | None = None) -> GradeOutcome:
    try:
        grade = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: not JSON, an integer of > 4300 digits
        return GradeOutcome(None, [f"{GRADE_FILE} is not JSON: {exc}"], log or {})
    problems = data_violations(grade, GRADE_FILE) or violations(grade, project_schema("grade"), GRADE_FILE)
    return GradeOutcome(grade, [str(p) for p in problems], log or {})


def grade_submission_file(bundle: Bundle, submission: Path, backend: str, image: str | None,
                          prepared: PreparedData) -> GradeOutcome:
    """Grade one file outside any episode (as `mlebench grade-sample` does): the file is put in a
    fresh workspace under the name the grader reads, then graded as an episode would be."""
    from ..errors import CtxevalError
    from .runner import agent_limits

    if not bundle.grader_submission:
        raise CtxevalError(f"bundle {bundle.id!r} does not name its submission file (grader.submission)")
    if not submission.is_file():
        raise CtxevalError(f"submission not found: {submission}")
    labels = {LABEL_RUN: f"grade-{secrets.token_hex(4)}"}
    spec = SandboxSpec(image=image, limits=agent_limits(bundle), labels=labels, tools_dir=bundle.tools_dir,
                       data_dir=prepared.public)
    sandbox = create_sandbox(backend, spec)
    try:
        sandbox.start()
        written = sandbox.write_file(bundle.grader_submission, submission.read_bytes())
        if not written.ok:
            raise CtxevalError(f"could not place the submission in the sandbox: {written.stderr.strip()}")
        return grade_workspace(bundle, backend, image, sandbox.workspace_handle(), prepared, labels)
    finally:
        sandbox.stop()
