"""The limits an episode's sandboxes run under: the agent's, the grader's, and what a grader may write.

Both derive from the bundle's `limits:`; the agent's wall clock is the episode's budget, the
grader's its `grader.timeout_seconds` (plus its run stage, if it declares one)."""
from __future__ import annotations

from ..bundles.manifest import Bundle
from ..sandbox import SandboxLimits
from ..sandbox.artefacts import ArtefactLimits
from .context import Budget

WATCHDOG_GRACE_SECONDS = 60.0  # the host watchdog fires this long after the episode's wall budget
GRADER_WALL_SLACK_SECONDS = 120.0  # sandbox start and the copy-outs around the grader's own timeout
GRADER_OUTPUT_BYTES = 1024 * 1024  # stdout/stderr kept of a grader's command, and the size of grade.json read
OUTPUT_LIMITS = ArtefactLimits(max_bytes=64 * 1024 * 1024, max_file_bytes=16 * 1024 * 1024, max_files=5000)


def agent_limits(bundle: Bundle, budget: Budget | None = None) -> SandboxLimits:
    """The agent sandbox's limits; its wall clock is the episode's budget plus a grace for
    copy-out (the host watchdog), and the sandbox ends itself a while after that."""
    limits = bundle.limits
    wall = (budget or Budget()).resolve(bundle).wall_seconds
    return SandboxLimits(cpus=limits.cpus, memory_mb=limits.memory_mb, pids=limits.pids,
                         tmpfs_mb=limits.tmpfs_mb, workspace_mb=limits.workspace_cap_mb,
                         exec_timeout_seconds=limits.exec_timeout_seconds,
                         output_bytes=limits.output_bytes, wall_seconds=wall + WATCHDOG_GRACE_SECONDS)


def grader_limits(bundle: Bundle, extra_seconds: float = 0.0) -> SandboxLimits:
    """The grading sandbox's limits: the agent's resources, the grader's timeout for every command."""
    limits = bundle.limits
    return SandboxLimits(cpus=limits.cpus, memory_mb=limits.memory_mb, pids=limits.pids,
                         tmpfs_mb=limits.tmpfs_mb, workspace_mb=limits.workspace_cap_mb,
                         exec_timeout_seconds=bundle.grader_timeout_seconds, output_bytes=GRADER_OUTPUT_BYTES,
                         wall_seconds=bundle.grader_timeout_seconds + extra_seconds + GRADER_WALL_SLACK_SECONDS)
