"""The local backend: a temp folder and subprocesses with rlimits. NOT isolated.

For machines without a Docker engine, and only when asked for (or announced). The agent's code
runs as the calling user with the host's network and files; rlimits bound memory, CPU time
and file size (not the number of processes), and each command runs in its own process group.
"""
from __future__ import annotations

import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .artefacts import ArtefactCopy, ArtefactLimits, copy_folder
from .base import ROLE_GRADER, Sandbox, SandboxOptions, SandboxSpec, Scratch
from .defaults import MAX_FILE_BYTES
from .outcomes import ExecOutcome, ExecResult, OutputCollector, classify

SANDBOX_ENV = "CTXEVAL_LOCAL_SANDBOX"
KILL_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class LocalOptions(SandboxOptions):
    """The local provider takes no option (no runtime: there is no container)."""


class LocalSandbox(Sandbox):
    backend = "local"
    isolated = False
    options_type = LocalOptions

    def __init__(self, spec: SandboxSpec, options: LocalOptions | None = None):
        super().__init__(spec, options)
        self.root: Path | None = None
        self.workspace: Path | None = None
        self.tmp: Path | None = None
        self._groups: set[int] = set()
        self.token = secrets.token_hex(8)

    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"ctxeval-local-{self.spec.role}-"))
        self.tmp = self.root / "tmp"
        self.tmp.mkdir()
        self.workspace = self.root / "workspace"
        self.workspace.mkdir()
        self.workspace_path = str(self.workspace)
        if self.spec.workspace_files is not None:
            copy_folder(Path(self.spec.workspace_files), self.workspace)
            if self.spec.workspace_read_only:
                _read_only(self.workspace)
        for scratch in self.spec.scratch:
            folder = self.scratch_dir(scratch)
            folder.mkdir(parents=True)
            if scratch.files is not None:
                self.upload(scratch, scratch.files)
        self.started_at = time.monotonic()
        self._register()

    def scratch_dir(self, scratch: Scratch) -> Path:
        return self.root / "scratch" / scratch.mount.strip("/").replace("/", "_")

    def upload(self, scratch: Scratch, folder: Path) -> None:
        target = self.scratch_dir(scratch)
        copy_folder(Path(folder), target)
        if not scratch.writable:
            _read_only(target)

    def export(self, scratch: Scratch, dest: Path, limits: ArtefactLimits = ArtefactLimits()) -> ArtefactCopy:
        return copy_folder(self.scratch_dir(scratch), dest, limits)

    def copy_out(self, dest: Path, limits: ArtefactLimits = ArtefactLimits(),
                 priority: Iterable[str] = ()) -> ArtefactCopy:
        self.quiesce()
        return copy_folder(self.workspace, dest, limits, priority)

    def kill_agent(self) -> bool:
        self._kill_all()
        return True

    def alive(self) -> bool:
        return self.root is not None  # started and not stopped: nothing outside removes it

    def stop(self) -> None:
        self._unregister()
        self._kill_all()
        if self.root is not None:
            for path in (self.root, *self.root.rglob("*")):  # read-only folders must be writable to go
                if path.is_dir() and not path.is_symlink():
                    os.chmod(path, 0o755)
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def environment(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "LANG": "C.UTF-8",
               "HOME": str(self.tmp), "TMPDIR": str(self.tmp), "PYTHONDONTWRITEBYTECODE": "1",
               "CTXEVAL_WORKSPACE": str(self.workspace), SANDBOX_ENV: self.token}
        optional = {"CTXEVAL_TOOLS": self.spec.tools_dir, "CTXEVAL_DATA": self.spec.data_dir}
        if self.spec.role == ROLE_GRADER:
            optional.update(CTXEVAL_GRADER=self.spec.grader_dir, CTXEVAL_PRIVATE=self.spec.private_dir)
        optional.update({s.env: self.scratch_dir(s) for s in self.spec.scratch})
        env.update({k: str(v) for k, v in optional.items() if v is not None})
        return {**env, **self.spec.env}

    def _limits(self, timeout: float) -> None:
        """Runs in the child before exec: new session, then rlimits."""
        os.setsid()
        memory = self.spec.limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        cpu = int(timeout) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))

    def exec(self, command: str, *, args: list[str] | None = None, timeout: float | None = None,
             stdin: bytes | None = None, env: dict[str, str] | None = None,
             output_cap: int | None = None) -> ExecResult:
        timeout = float(timeout or self.spec.limits.exec_timeout_seconds)
        collector = OutputCollector(output_cap or self.spec.limits.output_bytes)
        started = time.monotonic()
        if self.elapsed() > self.spec.limits.wall_seconds:
            return collector.result(None, ExecOutcome.WALL_TIME, 0.0)
        proc = subprocess.Popen(["bash", "-c", command, "ctxeval", *(args or [])], cwd=self.workspace,
                                env={**self.environment(), **(env or {})}, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: self._limits(timeout))
        self._groups.add(proc.pid)
        capped = threading.Event()

        def pump(stream, number: int) -> None:
            for chunk in iter(lambda: stream.read1(65536), b""):
                if collector.feed(number, chunk):
                    capped.set()
                    self._kill_group(proc.pid)

        readers = [threading.Thread(target=pump, args=(proc.stdout, 1), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, 2), daemon=True)]
        for reader in readers:
            reader.start()
        try:
            proc.stdin.write(stdin or b"")
            proc.stdin.close()
        except BrokenPipeError:
            pass
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self._kill_group(proc.pid)
            proc.wait()
        self._kill_group(proc.pid)  # nothing it forked outlives the command
        for reader in readers:
            reader.join(timeout=KILL_GRACE_SECONDS)
        exit_code = proc.returncode
        exit_code = 128 - exit_code if exit_code < 0 else exit_code
        memory_killed = exit_code != 0 and b"MemoryError" in collector.raw(2)
        outcome = classify(exit_code, timed_out=timed_out, capped=capped.is_set(), memory_killed=memory_killed,
                           stderr=collector.raw(2))
        return collector.result(exit_code, outcome, time.monotonic() - started)

    def _kill_group(self, pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _kill_all(self) -> None:
        """Kill every process group this sandbox started, then every process still carrying its
        token in its environment (which finds those that left their group with setsid)."""
        for pgid in list(self._groups):
            self._kill_group(pgid)
        self._groups.clear()
        marker = f"{SANDBOX_ENV}={self.token}".encode()
        for _ in range(5):
            found = False
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit() or int(entry.name) == os.getpid():
                    continue
                try:
                    if marker in (entry / "environ").read_bytes().split(b"\0"):
                        os.kill(int(entry.name), signal.SIGKILL)
                        found = True
                except (OSError, ProcessLookupError):
                    continue
            if not found:
                return
            time.sleep(0.05)

    def reset(self, starter_dir: Path) -> str | None:
        self._kill_all()
        for folder in (self.workspace, self.tmp):
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        shutil.copytree(starter_dir, self.workspace, dirs_exist_ok=True)
        return self.workspace_digest()

    def quiesce(self) -> None:
        self._kill_all()

    def describe(self) -> dict:
        info = super().describe()
        info["warning"] = "local backend: NOT isolated (host user, host network, host files)"
        return info


def _read_only(folder: Path) -> None:
    """Files and folders of a local "read-only" workspace: not writable by the (same) user. Only a
    courtesy: the local backend is not isolated and the user could change them back."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if not path.is_symlink():
            os.chmod(path, 0o555 if path.is_dir() else 0o444)
    os.chmod(folder, 0o555)
