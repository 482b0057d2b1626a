"""The one sandbox contract every provider fulfils, and the records it takes and returns.

Everything the agent does crosses this interface: exec (with timeout and output cap),
read/write of files, reset to the starter state, copy-out of artefacts. A provider is a subclass
of `Sandbox`: it says what it can do in class attributes (`isolated`, `needs_image`,
`supports_runtime`), names its options dataclass in `options_type`, and answers `available()`;
the registry (registry.py) finds it by name or by import path. Nothing outside this package asks
which provider it has, only what the provider can do.
"""
from __future__ import annotations

import abc
import hashlib
import io
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable

from ..errors import SandboxError
from ..hashing import iter_files
from .artefacts import ArtefactCopy, ArtefactLimits
from .cleanup import CleanupReport, Leftover
from .defaults import DEADLINE_GRACE_SECONDS, LABEL_RUN
from .outcomes import ExecOutcome, ExecResult

ROLE_AGENT = "agent"
ROLE_GRADER = "grader"  # runs the bundle's grader: sees the private answers, never runs the agent's code
ROLE_SUBMISSION = "submission"  # runs the agent's code for a grader that grades by behaviour: no answers


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
class Scratch:
    """A size-capped folder of the sandbox's own besides the workspace (docker: an anonymous tmpfs
    volume), optionally filled from a host folder at start; its path is given to the sandbox's
    programs in the environment variable `env`. It can be copied out with `Sandbox.export`."""

    env: str
    mount: str
    files: Path | None = None
    writable: bool = True  # by the sandbox user; otherwise its files are root's, read-only to it
    size_mb: int = 64


@dataclass(frozen=True)
class SandboxSpec:
    """What to start. Host folders are mounted read-only; nothing is shared with another sandbox:
    what one sandbox's workspace holds reaches another only as files copied out and vetted."""

    image: str | None
    limits: SandboxLimits
    labels: dict[str, str]
    role: str = ROLE_AGENT
    tools_dir: Path | None = None
    data_dir: Path | None = None
    grader_dir: Path | None = None
    private_dir: Path | None = None
    workspace_files: Path | None = None  # a host folder placed in the workspace at start
    workspace_read_only: bool = False  # the workspace's files are root's: the sandbox user only reads
    scratch: tuple[Scratch, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    episodes: int = 1  # episodes it may serve (a run's warm pool): what `ctxeval clean --expired` waits for

    @property
    def deadline_seconds(self) -> float:
        """Seconds after start at which the sandbox ends itself."""
        return self.limits.wall_seconds + DEADLINE_GRACE_SECONDS

    @property
    def lifetime_seconds(self) -> float:
        """Seconds after start past which no episode can still be using the sandbox."""
        return self.deadline_seconds * self.episodes


# One line per file, "<sha256>  ./<path>", sorted by path: the same on host and in any sandbox.
DIGEST_COMMAND = ('cd "$CTXEVAL_WORKSPACE" && find . -type f -print0 | LC_ALL=C sort -z '
                  '| xargs -0 -r sha256sum')


# Reads one regular file as the sandbox user: no link followed, never blocks on a FIFO or device.
READ_TIMEOUT_SECONDS = 20.0
READ_FILE_COMMAND = 'exec python3 -I -S -c "$1" "$2" "$3"'
READ_FILE_SCRIPT = r"""
import os, stat, sys
try:
    fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
except OSError as exc:
    sys.exit(f"{exc.strerror}: {sys.argv[1]}")
if not stat.S_ISREG(os.fstat(fd).st_mode):
    sys.exit(f"not a regular file: {sys.argv[1]}")
os.set_blocking(fd, True)
left = int(sys.argv[2])
while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
    sys.stdout.buffer.write(chunk)
    left -= len(chunk)
"""


def folder_digest(folder: Path) -> str:
    """The host-side twin of Sandbox.workspace_digest, for a starter folder."""
    lines = []
    for file in sorted(iter_files(folder), key=lambda p: ("./" + p.relative_to(folder).as_posix()).encode()):
        if file.is_file() and not file.is_symlink():
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            lines.append(f"{digest}  ./{file.relative_to(folder).as_posix()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def tar_of_folder(folder: Path) -> bytes:
    """An in-memory tar of a folder's contents (names relative to it), for workspace restore."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for file in iter_files(folder):
            tar.add(file, arcname=file.relative_to(folder).as_posix(), recursive=False)
    return buffer.getvalue()


_LIVE: set["Sandbox"] = set()
_LIVE_LOCK = threading.Lock()


def live_sandboxes(run_id: str | None = None) -> list["Sandbox"]:
    """The sandboxes this process started and has not stopped (of one run, with `run_id`)."""
    with _LIVE_LOCK:
        return [s for s in _LIVE if run_id is None or s.spec.labels.get(LABEL_RUN) == run_id]


def stop_sandboxes(run_id: str | None = None) -> int:
    """Stop (remove) every live sandbox of a run, from any thread: what an interrupted run does.
    Episodes using them see their sandbox gone at their next action."""
    stopped = 0
    for sandbox in live_sandboxes(run_id):
        try:
            sandbox.stop()
            stopped += 1
        except Exception:
            pass
    return stopped


@dataclass(frozen=True)
class SandboxOptions:
    """A provider's options: none here. A provider that takes some names its own subclass in
    `Sandbox.options_type`; registry.options_from_mapping checks a mapping against its fields."""


class Sandbox(abc.ABC):
    """A started environment the agent acts in; one subclass per provider (docker, local, ...)."""

    backend: ClassVar[str] = "abstract"
    """The provider's name, as results and events record it."""
    isolated: ClassVar[bool] = False
    """The agent's code cannot reach the host's files, processes or network."""
    needs_image: ClassVar[bool] = False
    """Sandboxes start from the bundle's image (`spec.image`): the evaluator builds it first."""
    supports_runtime: ClassVar[bool] = False
    """Takes an OCI runtime such as runsc (gVisor) as the option `runtime` (`ctxeval run --runtime`)."""
    reusable: ClassVar[bool] = False
    """A sandbox can serve several episodes of a run, with a verified reset between them (park, renew)."""
    options_type: ClassVar[type[SandboxOptions]] = SandboxOptions
    """The dataclass of the options this provider takes."""
    unavailable_hint: ClassVar[str] = "it is not available on this machine"
    """Why `available()` said no, for the error that names the provider."""
    workspace_path: str = "/workspace"

    def __init__(self, spec: SandboxSpec, options: SandboxOptions | None = None):
        self.spec = spec
        self.options = options if options is not None else self.options_type()
        self.started_at: float | None = None
        self.events: list[dict[str, Any]] = []  # what the sandbox itself did (quiesce, watchdog, ...)

    # the provider, before any sandbox
    @classmethod
    def available(cls) -> bool:
        """Whether this machine can start sandboxes of this provider now (e.g. an engine answers)."""
        return True

    @classmethod
    def leftovers(cls, exclude_run: str | None = None) -> list[Leftover]:
        """What sandboxes of this provider left behind (but those of `exclude_run`)."""
        return []

    @classmethod
    def cleanup_leftovers(cls, run_id: str | None = None, expired_only: bool = False) -> CleanupReport:
        """Remove what sandboxes of one run (of every run without `run_id`; only those past their
        deadline with `expired_only`) left behind. Nothing to do for a provider whose sandboxes
        go with the process that started them."""
        return CleanupReport([], [])

    # lifecycle
    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def reset(self, starter_dir: Path) -> str | None:
        """Kill every agent process, clear temp space and restore the workspace to `starter_dir`;
        returns the workspace's digest (workspace_digest's) as the reset left it, None when it
        cannot be computed. A caller compares it with folder_digest(starter_dir)."""

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

    @abc.abstractmethod
    def copy_out(self, dest: Path, limits: ArtefactLimits = ArtefactLimits(),
                 priority: Iterable[str] = ()) -> ArtefactCopy:
        """Copy the workspace's regular files and folders to a host folder within `limits`
        (nothing else, never through the sandbox's own programs), `priority` paths first; the
        returned record lists what was copied and what was skipped or refused, and why. Quiesces
        first: after a copy-out nothing of the agent's runs in the sandbox until `reset`."""

    @abc.abstractmethod
    def export(self, scratch: Scratch, dest: Path, limits: ArtefactLimits = ArtefactLimits()) -> ArtefactCopy:
        """Copy one scratch folder's files to a host folder within `limits` (quiesce first when
        the sandbox's user may still be writing there)."""

    @abc.abstractmethod
    def upload(self, scratch: Scratch, folder: Path) -> None:
        """Place a host folder's files in a scratch folder of a started sandbox."""

    def refill(self, folder: Path | None) -> None:
        """Ready a parked sandbox whose workspace comes from the host (a grader's) for its next use:
        every process killed, the workspace, the writable scratch folders and temp space emptied,
        then `folder`'s files placed in the workspace as at start."""
        raise SandboxError(f"the {self.backend} provider cannot refill a sandbox")

    def environment(self) -> dict[str, str]:
        """The environment the sandbox's programs see (where the workspace, tools, data are)."""
        return {}

    def read_scratch(self, scratch: Scratch, name: str, max_bytes: int) -> bytes | None:
        """One regular file of a scratch folder (at most `max_bytes`; None: missing, or not a regular
        file), e.g. a grader's grade.json. This default copies the folder out first."""
        import shutil
        import tempfile
        from .artefacts import read_regular
        dest = Path(tempfile.mkdtemp(prefix="ctxeval-scratch-"))
        try:
            copy = self.export(scratch, dest, ArtefactLimits(max_bytes=max_bytes * 2, max_file_bytes=max_bytes))
            return read_regular(dest / name, max_bytes) if name in copy.copied else None
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    def preload(self, script: str, paths: Iterable[str] = ()) -> bool:
        """Load a Python program's imports in the sandbox once (`script`: its path there, `paths`:
        folders it puts on sys.path), so that run_preloaded starts it in a fresh process without
        paying them; False when the provider cannot."""
        return False

    def run_preloaded(self, script: str, args: list[str] | None = None, timeout: float | None = None) -> ExecResult:
        """Run a preloaded program as `python3 SCRIPT ARGS` would, with every limit of exec()."""
        raise SandboxError(f"the {self.backend} provider cannot run preloaded programs")

    def park(self) -> bool:
        """Make a sandbox whose episode ended safe to keep idle for another episode (every agent
        process gone, nothing frozen, its deadline moved on); False when it cannot be kept. Only
        providers with `reusable = True` are ever parked (sandbox/pool.py)."""
        return False

    def renew(self) -> bool:
        """Start a parked sandbox's next episode: its deadline, wall clock and events begin anew
        (the caller then resets it). False when it cannot serve another episode."""
        return False

    @abc.abstractmethod
    def kill_agent(self) -> bool:
        """Kill every process the sandbox user runs (the sandbox stays usable); True when none is left."""

    def write_file(self, path: str, data: bytes) -> ExecResult:
        """Write a file as the sandbox user (relative paths are under the workspace)."""
        return self.exec('mkdir -p -- "$(dirname -- "$1")" && cat > "$1"', args=[path], stdin=data)

    def read_file(self, path: str, max_bytes: int = 1024 * 1024, timeout: float = READ_TIMEOUT_SECONDS) -> bytes | None:
        """A regular file's bytes (at most `max_bytes`), or None when it is missing, not a regular
        file (a FIFO never blocks the read) or cannot be read in `timeout` seconds."""
        result = self.exec(READ_FILE_COMMAND, args=[READ_FILE_SCRIPT, path, str(max_bytes)],
                           output_cap=max_bytes, timeout=timeout)
        if result.exit_code != 0 and result.outcome != ExecOutcome.OUTPUT_CAPPED:
            return None
        return result.raw_stdout[:max_bytes]

    def workspace_digest(self) -> str | None:
        """sha256 over the workspace's files (names and contents), computed inside the sandbox."""
        result = self.exec(DIGEST_COMMAND, output_cap=64 * 1024 * 1024, timeout=120)
        return hashlib.sha256(result.raw_stdout).hexdigest() if result.exit_code == 0 else None

    def _register(self) -> None:
        with _LIVE_LOCK:
            _LIVE.add(self)

    def _unregister(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def alive(self) -> bool:
        """Whether the sandbox still exists (a provider whose sandboxes can be removed from outside,
        e.g. by an engine restart, says so: the episode is then run again, not graded as empty)."""
        return True

    def describe(self) -> dict[str, Any]:
        """What events record about this sandbox (never a secret)."""
        return {"backend": self.backend, "isolated": self.isolated, "image": self.spec.image,
                "role": self.spec.role}

    def elapsed(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
