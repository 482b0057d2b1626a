"""The docker backend: one hardened, self-ending container per sandbox.

- PID 1 is ctxeval's supervisor (inside/supervisor.py), root inside the container with only
  SUPERVISOR_CAPS; everything the agent runs runs as AGENT_UID with no capability at all, so the
  agent can neither signal nor ptrace PID 1 or the exec helpers, and nothing the evaluator trusts
  lives where the agent can write.
- Every command, file read and write, and reset goes over the sandbox's persistent channel: PID 1's
  attached stdin and stdout, one JSON request per call, no new exec in the engine (docker_exec.py;
  the same timeout, output cap, group kill, counters and outcomes as a plain `docker exec` of
  inside/exec_helper.py, which is the fallback when the channel answers wrongly, recorded as a
  channel_fallback event). The host bounds every exec: at its deadline plus EXEC_GRACE_SECONDS it
  asks PID 1 to kill every agent process, and gives up EXEC_GRACE_SECONDS later whatever happens.
- The container's stdin is attached by this process; the engine closes it when we are gone and
  PID 1 then ends the container, which the engine removes with its volumes (auto-remove). PID 1
  also ends it at its deadline, a label records that deadline for `ctxeval clean`.
- The workspace and scratch folders are anonymous tmpfs volumes (size-capped, gone with the
  container). Copy-out reads the workspace through the engine's archive API after every agent
  process is killed and the container frozen: no program of the sandbox takes part in it.
- Host folders are bind-mounted read-only from neutral staged paths (staging.py).
- A container can serve again (a run's warm pool, pool.py): reset, refill, park and renew are
  docker_reuse.py's, each one request to PID 1.
- What a container may do (capabilities, limits, mounts, labels) is docker_config.py's.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import SandboxError
from . import cleanup
from .artefacts import ArtefactCopy, ArtefactLimits, copy_tar_stream, tar_for_upload
from .base import SandboxOptions, SandboxSpec, Scratch
from .defaults import (AGENT_UID, AGENT_USER, LABEL_DEADLINE, LABEL_EPISODE, LABEL_MANAGED,  # noqa: F401
                       LABEL_ROLE, LABEL_RUN, MAX_FILE_BYTES, NETWORK_MODE, NOFILE_LIMIT, OUTPUT_MOUNT)
# The container's configuration; its names stay importable from here (tests, the escape checks).
from .docker_config import (CAP_DROP, DATA_MOUNT, GRADER_MOUNT, LOG_DRIVER, LOG_OPTIONS,  # noqa: F401
                            PRIVATE_MOUNT, PYTHON, SECURITY_OPT, SHM_SIZE, SUPERVISOR_CAPS, SUPERVISOR_USER,
                            TOOLS_MOUNT, WORKSPACE_MOUNT, container_config, container_environment)
from . import docker_exec
from .docker_reuse import DockerReuse
from .docker_exec import EXEC_GRACE_SECONDS
from .inside import supervisor_preamble
from .outcomes import ExecOutcome, ExecResult, OutputCollector
from .supervisor_channel import SupervisorChannel

REMOVE_WAIT_SECONDS = 10.0  # stop() waits this long for the engine to finish removing the container


def docker_engine_answers() -> bool:
    try:
        import docker
        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


@dataclass(frozen=True)
class DockerOptions(SandboxOptions):
    runtime: str | None = None
    """The OCI runtime of every container, e.g. runsc (gVisor); None: the engine's default (runc)."""
    client: Any = field(default=None, repr=False, compare=False)
    """A docker.DockerClient to use instead of docker.from_env() (tests share one)."""


class DockerSandbox(DockerReuse):
    backend = "docker"
    isolated = True
    needs_image = True
    supports_runtime = True
    reusable = True
    options_type = DockerOptions
    unavailable_hint = "no Docker engine answers (is the daemon running and DOCKER_HOST right?)"
    workspace_path = WORKSPACE_MOUNT

    def __init__(self, spec: SandboxSpec, options: DockerOptions | None = None):
        super().__init__(spec, options)
        self.client = self.options.client
        if self.client is None:
            import docker
            self.client = docker.from_env(timeout=120)
        self.runtime = self.options.runtime
        self.container: Any = None
        self.channel: SupervisorChannel | None = None
        self.channel_usable = True  # False once the channel answered wrongly: plain exec from then on
        self.starter_hash: str | None = None  # the starter PID 1 keeps (sent with the first reset)
        self.preloaded: set[str] = set()  # Python programs whose imports PID 1 holds (warm grading)
        self.deadline: float | None = None
        self.paused = False
        self.removed = False
        self._watchdog: threading.Timer | None = None
        self.wall_expired = False

    @classmethod
    def available(cls) -> bool:
        return docker_engine_answers()

    @classmethod
    def leftovers(cls, exclude_run: str | None = None) -> list[cleanup.Leftover]:
        return cleanup.leftovers(exclude_run=exclude_run)

    @classmethod
    def cleanup_leftovers(cls, run_id: str | None = None, expired_only: bool = False) -> cleanup.CleanupReport:
        return cleanup.cleanup(run_id=run_id, expired_only=expired_only)

    # -- configuration -----------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        return container_environment(self.spec)

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        api = self.client.api
        self.deadline = time.time() + self.spec.deadline_seconds
        name = f"ctxeval-{self.spec.role}-{secrets.token_hex(5)}"
        container_id = api.create_container_from_config(
            container_config(api, self.spec, self.deadline, self.runtime), name=name)["Id"]
        self.container = self.client.containers.get(container_id)
        self._register()  # from here on an interrupted run can remove it
        try:
            self.channel = SupervisorChannel(api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}))
            api.start(container_id)
            self.channel.send(supervisor_preamble())
            if self.channel.wait_ready() is None:
                raise SandboxError("the sandbox's supervisor did not start: "
                                   + self.channel.stderr.decode("utf-8", "replace")[-800:])
            self._fill()
        except Exception:
            self.stop()
            raise
        self._arm_watchdog()

    def _arm_watchdog(self) -> None:
        self.started_at = time.monotonic()
        self._watchdog = threading.Timer(self.spec.limits.wall_seconds, self._wall_clock_expired)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _fill(self) -> None:
        """Host files for the workspace and scratch folders, written by the engine, owned by the
        agent when writable, by root (read-only to the agent) otherwise."""
        uploads = [(WORKSPACE_MOUNT, self.spec.workspace_files, not self.spec.workspace_read_only)]
        uploads += [(s.mount, s.files, s.writable) for s in self.spec.scratch]
        for mount, folder, writable in uploads:
            if folder is not None:
                self._put(mount, Path(folder), writable)

    def _put(self, mount: str, folder: Path, writable: bool) -> None:
        owner = AGENT_UID if writable else 0
        with tar_for_upload(folder, owner, owner) as archive:
            if not self.client.api.put_archive(self.container.id, mount, archive):
                raise SandboxError(f"could not place files in the sandbox at {mount}")

    def _wall_clock_expired(self) -> None:
        """Host-side watchdog: the sandbox outlived its wall budget. Every agent process is
        killed (an exec in flight ends at once); if PID 1 does not answer, the container is frozen.
        The workspace stays, so the episode is still graded."""
        self.wall_expired = True
        self.events.append({"event": "watchdog_kill", "after_s": self.spec.limits.wall_seconds})
        reply = self.channel.request("kill_agent", timeout=10) if self.channel else None
        if not (reply and reply.get("ok")):
            self._pause()

    def stop(self) -> None:
        self._unregister()
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.channel is not None:
            self.channel.close()
        if self.container is not None and not self.removed:
            self.removed = True
            try:
                self.client.api.remove_container(self.container.id, force=True, v=True)
            except Exception:
                pass  # already being removed: auto-removed when PID 1 saw us hang up
            self._wait_gone()

    def _wait_gone(self) -> None:
        """Return once the engine no longer holds the container (auto-removal runs in the engine)."""
        deadline = time.monotonic() + REMOVE_WAIT_SECONDS
        while self.state() != "gone" and time.monotonic() < deadline:
            time.sleep(0.05)

    def state(self) -> str:
        """The engine's view: running, paused, exited, ... or "gone" (removed)."""
        import docker.errors
        if self.container is None:
            return "gone"
        try:
            return self.client.api.inspect_container(self.container.id)["State"]["Status"]
        except docker.errors.NotFound:
            return "gone"
        except Exception:
            return "unknown"

    def alive(self) -> bool:
        return self.state() in ("running", "paused")

    def _pause(self) -> bool:
        try:
            self.client.api.pause(self.container.id)
            self.paused = True
        except Exception as exc:
            self.events.append({"event": "freeze_failed", "error": str(exc)[:300]})
        return self.paused

    # -- exec ----------------------------------------------------------------------------------------
    def exec(self, command: str, *, args: list[str] | None = None, timeout: float | None = None,
             stdin: bytes | None = None, env: dict[str, str] | None = None,
             output_cap: int | None = None) -> ExecResult:
        return self._exec(command, args, timeout, stdin, env, output_cap)

    def _exec(self, command: str, args: list[str] | None, timeout: float | None, stdin: bytes | None,
              env: dict[str, str] | None, output_cap: int | None, program: str | None = None) -> ExecResult:
        """One command, or (`program`) a program PID 1 preloaded."""
        limits = self.spec.limits
        timeout = float(timeout or limits.exec_timeout_seconds)
        collector = OutputCollector(output_cap or limits.output_bytes)
        if self.wall_expired:
            return collector.result(None, ExecOutcome.WALL_TIME, 0.0)
        if self.container is None or self.removed:
            return collector.result(None, ExecOutcome.SANDBOX_DIED, 0.0)
        if self.paused:
            raise SandboxError("the sandbox is quiesced (frozen for copy-out); reset it before running commands")
        started = time.monotonic()
        if program is not None and not self.channel_usable:
            raise SandboxError("the sandbox's channel is not usable: preloaded programs cannot run")
        if program is not None:
            end = self._on_channel(command, list(args or []), stdin or b"", dict(env or {}), timeout, collector, program)
        else:
            transport = (self._on_channel if self.channel_usable else self._plain)
            end = transport(command, list(args or []), stdin or b"", dict(env or {}), timeout, collector)
        self.events.extend(end.events)
        if end.abandoned:
            self.events.append({"event": "exec_abandoned"})
        if end.fault is not None:
            self.channel_usable = False
            self.events.append({"event": "channel_fallback", "reason": end.fault[:300]})
        return docker_exec.exec_result(end, collector, time.monotonic() - started,
                                       wall_expired=self.wall_expired, state=self.state)

    def _on_channel(self, command: str, args: list[str], stdin: bytes, env: dict[str, str], timeout: float,
                    collector: OutputCollector, program: str | None = None) -> docker_exec.ExecEnd:
        assert self.channel is not None
        return docker_exec.on_channel(self.channel, command, args, stdin, env, timeout, collector, self._escalate,
                                      program)

    def _plain(self, command: str, args: list[str], stdin: bytes, env: dict[str, str], timeout: float,
               collector: OutputCollector) -> docker_exec.ExecEnd:
        return docker_exec.plain(self.client.api, self.container.id, command, args, stdin, env, timeout,
                                 collector, self._escalate)

    def _escalate(self) -> None:
        """An exec outlived its deadline: kill every agent process (and a plain exec's helper)."""
        reply = self.channel.request("kill_agent", timeout=EXEC_GRACE_SECONDS) if self.channel else None
        self.events.append({"event": "exec_escalated", "killed": bool(reply and reply.get("ok"))})

    # -- workspace -------------------------------------------------------------------------------------
    def kill_agent(self) -> bool:
        """Every process but PID 1 killed, without forking (works with the pids limit exhausted)."""
        reply = self.channel.request("kill_agent") if self.channel else None
        return bool(reply and reply.get("ok"))

    def quiesce(self) -> None:
        if self.paused or self.container is None or self.removed:
            return
        killed = self.kill_agent()
        frozen = self._pause()
        self.events.append({"event": "quiesce", "outcome": "ok" if killed and frozen else "failed",
                            "killed": killed, "frozen": frozen})

    def copy_out(self, dest: Path, limits: ArtefactLimits = ArtefactLimits(),
                 priority: Iterable[str] = ()) -> ArtefactCopy:
        """Frozen only while the workspace is read: a frozen PID 1 cannot end the container, so a
        driver killed during grading would otherwise leave it behind (the grade reads the copy)."""
        self.quiesce()
        try:
            return self._archive(WORKSPACE_MOUNT, dest, limits, priority)
        finally:
            try:
                self._thaw()
            except Exception as exc:  # noqa: BLE001 - still frozen: stop() or the next reset deals with it
                self.events.append({"event": "thaw_failed", "error": str(exc)[:300]})

    def export(self, scratch: Scratch, dest: Path, limits: ArtefactLimits = ArtefactLimits()) -> ArtefactCopy:
        return self._archive(scratch.mount, dest, limits, ())

    def upload(self, scratch: Scratch, folder: Path) -> None:
        self._put(scratch.mount, folder, scratch.writable)

    def _archive(self, mount: str, dest: Path, limits: ArtefactLimits, priority: Iterable[str]) -> ArtefactCopy:
        try:
            chunks, _stat = self.client.api.get_archive(self.container.id, mount + "/.")
        except Exception as exc:
            raise SandboxError(f"the engine could not read {mount} out of the sandbox: {exc}") from exc
        return copy_tar_stream(chunks, dest, limits, priority)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(container=getattr(self.container, "name", None), runtime=self.runtime or "runc")
        return info
