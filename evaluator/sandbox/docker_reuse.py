"""The docker backend's sandbox between two uses: reset (an agent's), refill (a grader's), parking
and renewing in a run's warm pool, preloaded programs, reads by PID 1.

A mixin of DockerSandbox (docker.py), kept apart so the container's lifecycle and its commands
read in one file and what makes a container serve again reads in this one. Everything here goes
over the sandbox's channel to PID 1; the plain-exec reset is the fallback when the channel
answered wrongly.
"""
from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import SandboxError
from .artefacts import tar_for_upload
from .base import Sandbox, Scratch, tar_of_folder
from .defaults import AGENT_UID
from .docker_config import WORKSPACE_MOUNT
from .outcomes import ExecResult

if TYPE_CHECKING:
    from .supervisor_channel import SupervisorChannel

RESET_TIMEOUT_SECONDS = 60.0
CHANNEL_FILL_BYTES = 8 * 1024 * 1024  # a grader's artefacts up to this size travel over the channel
RESET_DIRS = ("/tmp", "/dev/shm", "/dev/mqueue")  # emptied by a reset, besides the workspace
# Reset over plain exec, as the agent's uid once PID 1 has killed every agent process: clear temp
# space and the workspace, unpack the starter from stdin.
RESET_SCRIPT = r"""
for dir in /tmp /dev/shm "$CTXEVAL_WORKSPACE"; do
  chmod -R u+rwX "$dir" 2>/dev/null
  find "$dir" -mindepth 1 -delete 2>/dev/null
done
tar -x -C "$CTXEVAL_WORKSPACE" --no-same-owner --no-same-permissions
"""


class DockerReuse(Sandbox):
    """What DockerSandbox does between uses (it supplies the attributes declared here)."""

    channel: "SupervisorChannel | None"
    channel_usable: bool
    starter_hash: str | None
    preloaded: set[str]
    paused: bool
    removed: bool
    wall_expired: bool
    deadline: float | None
    client: Any
    container: Any

    def _arm_watchdog(self) -> None:
        raise NotImplementedError

    def _put(self, mount: str, folder: Path, writable: bool) -> None:
        raise NotImplementedError

    def _exec(self, command: str, args: list[str] | None, timeout: float | None, stdin: bytes | None,
              env: dict[str, str] | None, output_cap: int | None, program: str | None = None) -> ExecResult:
        raise NotImplementedError

    def park(self) -> bool:
        """Idle between episodes: the watchdog off, every agent process gone, not frozen (a frozen
        PID 1 could not end the container if this process went away), a new deadline."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.channel is None or not self.channel_usable or self.removed:
            return False
        if self.paused:
            try:
                self.client.api.unpause(self.container.id)
            except Exception:
                return False
            self.paused = False
        return self.kill_agent() and self._move_deadline()

    def renew(self) -> bool:
        if not self._move_deadline():
            return False
        self.events, self.wall_expired = [], False
        self._arm_watchdog()
        return True

    def _move_deadline(self) -> bool:
        self.deadline = time.time() + self.spec.deadline_seconds
        reply = self.channel.request("set_deadline", at=self.deadline) if self.channel else None
        return bool(reply and reply.get("ok"))

    def preload(self, script: str, paths: Iterable[str] = ()) -> bool:
        if script in self.preloaded:
            return True
        reply = self.channel.request("preload", script=script, paths=list(paths)) if self.channel_usable and self.channel else None
        self.events.append({"event": "preload", "script": script, "ok": bool(reply and reply.get("ok")),
                            "loaded": (reply or {}).get("loaded"), "error": (reply or {}).get("error")})
        if reply and reply.get("ok"):
            self.preloaded.add(script)
        return script in self.preloaded

    def run_preloaded(self, script: str, args: list[str] | None = None, timeout: float | None = None) -> ExecResult:
        if script not in self.preloaded:
            raise SandboxError(f"{script} was not preloaded in this sandbox")
        return self._exec(script, args, timeout, None, None, None, program=script)

    def reset(self, starter_dir: Path) -> str | None:
        """One round trip over the channel: PID 1 kills every agent process, a helper with the
        agent's uid empties RESET_DIRS and the workspace, removes the agent's System V IPC objects,
        unpacks the starter from PID 1's pristine copy and returns the workspace's digest. Plain
        exec (a channel that answered wrongly) takes three steps to the same end."""
        self._thaw()
        starter = tar_of_folder(starter_dir)
        if self.channel_usable:
            return self._reset_on_channel(starter)
        if not self.kill_agent():
            raise SandboxError("workspace reset failed: the sandbox's supervisor did not kill every process")
        result = self.exec(RESET_SCRIPT, stdin=starter, timeout=RESET_TIMEOUT_SECONDS)
        if result.exit_code != 0:
            raise SandboxError(f"workspace reset failed ({result.outcome}): {result.stderr.strip()[-500:]}")
        return self.workspace_digest()

    def _reset_on_channel(self, starter: bytes) -> str:
        assert self.channel is not None
        starter_hash = hashlib.sha256(starter).hexdigest()
        send = {} if starter_hash == self.starter_hash else {"starter": base64.b64encode(starter).decode()}
        reply = self.channel.request("reset", timeout=RESET_TIMEOUT_SECONDS, uid=AGENT_UID, dirs=list(RESET_DIRS),
                                     workspace=WORKSPACE_MOUNT, **send)
        if not (reply and reply.get("ok")):
            error = (reply or {}).get("error") or "no answer from the sandbox's supervisor"
            raise SandboxError(f"workspace reset failed: {error}")
        digest = reply.get("digest")
        if not (isinstance(digest, str) and len(digest) == 64):
            self.channel_usable = False
            self.events.append({"event": "channel_fallback", "reason": "a reset reply without a digest"})
            raise SandboxError("workspace reset failed: the sandbox's supervisor returned no digest")
        self.starter_hash = starter_hash
        return digest

    def refill(self, folder: Path | None) -> None:
        """One request to PID 1 (the files travel in it when the workspace is root's and they are
        small; otherwise the engine places them after it)."""
        self._thaw()
        root_owned = self.spec.workspace_read_only
        dirs = [*RESET_DIRS, *([] if root_owned else [WORKSPACE_MOUNT]), *(s.mount for s in self.spec.scratch if s.writable)]
        fill = self._small_tar(folder) if root_owned and folder is not None else None
        reply = self.channel.request("wipe", timeout=RESET_TIMEOUT_SECONDS, uid=AGENT_UID, dirs=dirs,
                                     root_dirs=[WORKSPACE_MOUNT] if root_owned else [], fill_dir=WORKSPACE_MOUNT,
                                     fill=None if fill is None else base64.b64encode(fill).decode()) if self.channel else None
        if not (reply and reply.get("ok")):
            raise SandboxError(f"refilling the sandbox failed: {(reply or {}).get('error') or 'no answer from its supervisor'}")
        if folder is not None and fill is None:
            self._put(WORKSPACE_MOUNT, Path(folder), not root_owned)

    @staticmethod
    def _small_tar(folder: Path) -> bytes | None:
        """The vetted tar of a host folder, when it is small enough to travel over the channel."""
        with tar_for_upload(Path(folder), 0, 0) as archive:
            data = archive.read(CHANNEL_FILL_BYTES + 1)
        return data if len(data) <= CHANNEL_FILL_BYTES else None

    def read_scratch(self, scratch: Scratch, name: str, max_bytes: int) -> bytes | None:
        """Read by PID 1 (root, no link followed, regular files only): one request, no engine call."""
        if "/" in name or name in ("", ".", ".."):
            raise SandboxError(f"not a file name: {name!r}")
        if not (self.channel_usable and self.channel):
            return super().read_scratch(scratch, name, max_bytes)
        reply = self.channel.request("read", path=f"{scratch.mount}/{name}", max=max_bytes)
        if reply is None or "ok" not in reply:
            return super().read_scratch(scratch, name, max_bytes)
        return base64.b64decode(reply["data"]) if reply["ok"] else None

    def _thaw(self) -> None:
        if self.paused:
            self.client.api.unpause(self.container.id)
            self.paused = False
