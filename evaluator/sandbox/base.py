"""The one sandbox contract every backend fulfils, and the records it returns.

Everything the agent does crosses this interface: exec (with timeout and output cap),
read/write of files, reset to the starter state, copy-out of artefacts.
"""
from __future__ import annotations

import abc
import hashlib
import io
import json
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..hashing import iter_files

# Outcomes of one exec, recorded as they are in events and results.
OUTCOME_OK = "ok"
OUTCOME_NONZERO_EXIT = "nonzero_exit"
OUTCOME_TIMEOUT = "timeout"
OUTCOME_OUTPUT_CAPPED = "output_capped"
OUTCOME_MEMORY_KILLED = "memory_killed"
OUTCOME_PIDS_LIMIT = "pids_limit"
OUTCOME_KILLED = "killed"
OUTCOME_WALL_TIME = "wall_time_exceeded"
OUTCOME_SANDBOX_DIED = "sandbox_died"
OUTCOME_DISK_FULL = "disk_full"
DISK_FULL_MESSAGE = b"No space left on device"

ROLE_AGENT = "agent"
ROLE_GRADER = "grader"


@dataclass(frozen=True)
class SandboxLimits:
    cpus: float
    memory_mb: int
    pids: int
    tmpfs_mb: int
    exec_timeout_seconds: float
    output_bytes: int
    wall_seconds: float
    workspace_mb: int = 512  # total size of the workspace (docker: a size-capped tmpfs volume)


@dataclass(frozen=True)
class SandboxSpec:
    """What to start. Host folders are mounted read-only; the workspace is the only shared state."""

    image: str | None
    limits: SandboxLimits
    labels: dict[str, str]
    role: str = ROLE_AGENT
    tools_dir: Path | None = None
    data_dir: Path | None = None
    grader_dir: Path | None = None
    private_dir: Path | None = None
    workspace_read_only: bool = False
    workspace_source: str | None = None  # an existing volume (docker) / folder (local) to mount
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class ExecResult:
    exit_code: int | None
    stdout: str
    stderr: str
    outcome: str
    duration_s: float
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    raw_stdout: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.outcome == OUTCOME_OK

    def to_record(self, max_chars: int = 4000) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "outcome": self.outcome,
                "duration_s": round(self.duration_s, 4), "stdout": self.stdout[:max_chars],
                "stderr": self.stderr[:max_chars], "stdout_bytes": self.stdout_bytes,
                "stderr_bytes": self.stderr_bytes}


class OutputCollector:
    """Keeps at most `cap` bytes of stdout+stderr together and says when the cap is exceeded."""

    def __init__(self, cap: int):
        self.cap = cap
        self.kept = {1: bytearray(), 2: bytearray()}
        self.seen = {1: 0, 2: 0}

    @property
    def total(self) -> int:
        return self.seen[1] + self.seen[2]

    @property
    def exceeded(self) -> bool:
        return self.total > self.cap

    def feed(self, stream: int, data: bytes) -> bool:
        room = self.cap - len(self.kept[1]) - len(self.kept[2])
        if room > 0:
            self.kept[stream] += data[:room]
        self.seen[stream] += len(data)
        return self.exceeded

    def raw(self, stream: int) -> bytes:
        return bytes(self.kept[stream])

    def result(self, exit_code: int | None, outcome: str, duration_s: float) -> "ExecResult":
        return ExecResult(exit_code=exit_code, stdout=self.text(1), stderr=self.text(2),
                          outcome=outcome, duration_s=duration_s, stdout_bytes=self.seen[1],
                          stderr_bytes=self.seen[2], raw_stdout=self.raw(1))

    def text(self, stream: int) -> str:
        body = self.kept[stream].decode("utf-8", errors="replace")
        if self.exceeded and self.seen[stream] > len(self.kept[stream]):
            body += f"\n[ctxeval: output capped at {self.cap} bytes; {self.seen[stream]} bytes produced]"
        return body


# One line per file, "<sha256>  ./<path>", sorted by path: the same on host and in any sandbox.
DIGEST_COMMAND = ('cd "$CTXEVAL_WORKSPACE" && find . -type f -print0 | LC_ALL=C sort -z '
                  '| xargs -0 -r sha256sum')


def folder_digest(folder: Path) -> str:
    """The host-side twin of Sandbox.workspace_digest, for a starter folder."""
    lines = []
    for file in sorted(iter_files(folder), key=lambda p: ("./" + p.relative_to(folder).as_posix()).encode()):
        if file.is_file() and not file.is_symlink():
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            lines.append(f"{digest}  ./{file.relative_to(folder).as_posix()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def classify(exit_code: int | None, *, timed_out: bool, capped: bool,
             memory_killed: bool = False, pids_limited: bool = False, stderr: bytes | None = None) -> str:
    """One outcome per exec, most specific first."""
    if memory_killed:
        return OUTCOME_MEMORY_KILLED
    if pids_limited:
        return OUTCOME_PIDS_LIMIT
    if capped:
        return OUTCOME_OUTPUT_CAPPED
    if timed_out:
        return OUTCOME_TIMEOUT
    if exit_code == 0:
        return OUTCOME_OK
    if exit_code is not None and exit_code in (137, -9):
        return OUTCOME_KILLED
    if stderr is not None and DISK_FULL_MESSAGE in stderr:
        return OUTCOME_DISK_FULL
    return OUTCOME_NONZERO_EXIT


MAX_ARTEFACTS_BYTES = 200 * 1024 * 1024  # the whole copy-out (tar stream)
MAX_ARTEFACT_FILE_BYTES = 50 * 1024 * 1024  # one file; bigger ones are listed as skipped, not copied

# Streams the workspace as a tar to stdout (regular files up to a size, folders; links and devices
# never), and the names it skipped to stderr as JSON. Runs inside the sandbox with its python3.
COPY_OUT_SCRIPT = r"""
import json, os, sys, tarfile
root, limit = os.environ["CTXEVAL_WORKSPACE"], int(sys.argv[1])
skipped = []
with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
    for folder, dirs, files in os.walk(root):
        dirs.sort(); files.sort()
        for name in files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not os.path.isfile(path) or os.path.islink(path):
                skipped.append({"name": rel, "reason": "not a regular file"})
            elif info.st_size > limit:
                skipped.append({"name": rel, "reason": f"{info.st_size} bytes > {limit}"})
            else:
                tar.add(path, arcname=rel, recursive=False)
sys.stderr.write(json.dumps(skipped[:1000]))
"""


def safe_extract(archive: bytes, dest: Path) -> list[str]:
    """Extract a tar from untrusted hands: no absolute paths, no links or devices leaving `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    names = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        for member in tar:
            try:
                tar.extract(member, dest, filter="data")
            except (tarfile.FilterError, OSError):
                continue  # refused: recorded by absence; never written outside dest
            if member.isfile():
                names.append(member.name.removeprefix("./"))
    return sorted(names)


def tar_of_folder(folder: Path) -> bytes:
    """An in-memory tar of a folder's contents (names relative to it), for workspace restore."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for file in iter_files(folder):
            tar.add(file, arcname=file.relative_to(folder).as_posix(), recursive=False)
    return buffer.getvalue()


class Sandbox(abc.ABC):
    """A started environment the agent acts in. Backends: docker (isolated), local (not)."""

    backend: str = "abstract"
    isolated: bool = False
    workspace_path: str = "/workspace"

    def __init__(self, spec: SandboxSpec):
        self.spec = spec
        self.started_at: float | None = None

    # lifecycle
    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def reset(self, starter_dir: Path) -> None:
        """Kill every agent process, clear temp space and restore the workspace to `starter_dir`."""

    @abc.abstractmethod
    def quiesce(self) -> None:
        """Kill every agent process, so the workspace stops changing before it is copied out and
        graded (a process left behind could otherwise swap files under the grader)."""

    # actions
    @abc.abstractmethod
    def exec(self, command: str, *, args: list[str] | None = None, timeout: float | None = None,
             stdin: bytes | None = None, env: dict[str, str] | None = None,
             output_cap: int | None = None) -> ExecResult:
        """Run `command` with bash in the workspace (`args` are $1, $2, ...).

        Never raises for the command's own failure: timeouts, caps and kills are outcomes.
        """

    def copy_out(self, dest: Path, max_bytes: int = MAX_ARTEFACTS_BYTES,
                 max_file_bytes: int = MAX_ARTEFACT_FILE_BYTES) -> list[str]:
        """Copy the workspace's regular files to a host folder safely; return the names copied.
        Files over `max_file_bytes`, links and devices are skipped (listed in `self.skipped_artefacts`);
        a stream over `max_bytes` in all raises SandboxError."""
        from ..errors import SandboxError
        result = self.exec("python3 -c \"$1\" \"$2\"", args=[COPY_OUT_SCRIPT, str(max_file_bytes)],
                           output_cap=max_bytes, timeout=120)
        if result.exit_code != 0:
            raise SandboxError(f"copying the workspace out failed ({result.outcome}): {result.stderr[-500:]}")
        try:
            self.skipped_artefacts = json.loads(result.stderr or "[]")
        except json.JSONDecodeError:
            self.skipped_artefacts = [{"name": "?", "reason": result.stderr[-300:]}]
        return safe_extract(result.raw_stdout, dest)

    @abc.abstractmethod
    def workspace_handle(self) -> str:
        """What another sandbox mounts to see this workspace (a volume name, a folder)."""

    def write_file(self, path: str, data: bytes) -> ExecResult:
        """Write a file as the sandbox user (relative paths are under the workspace)."""
        return self.exec('mkdir -p -- "$(dirname -- "$1")" && cat > "$1"', args=[path], stdin=data)

    def read_file(self, path: str, max_bytes: int = 1024 * 1024) -> bytes | None:
        """A file's bytes (at most `max_bytes`), or None when it cannot be read."""
        result = self.exec('cat -- "$1"', args=[path], output_cap=max_bytes)
        if result.exit_code != 0 and result.outcome != OUTCOME_OUTPUT_CAPPED:
            return None
        return result.raw_stdout

    def workspace_digest(self) -> str | None:
        """sha256 over the workspace's files (names and contents), computed inside the sandbox."""
        result = self.exec(DIGEST_COMMAND, output_cap=64 * 1024 * 1024, timeout=120)
        return hashlib.sha256(result.raw_stdout).hexdigest() if result.exit_code == 0 else None

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "isolated": self.isolated, "image": self.spec.image,
                "role": self.spec.role}

    def elapsed(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
