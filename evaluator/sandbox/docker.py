"""The docker backend: a hardened, long-lived container per sandbox, driven with `docker exec`.

The container's PID 1 is a tiny reaper, so `kill -KILL -1` from the agent's uid (used by reset)
kills every agent process but cannot stop the container. The workspace is a labelled named
volume; everything else the agent can write is tmpfs (/tmp, /dev/shm).
"""
from __future__ import annotations

import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import SandboxError
from .base import (OUTCOME_SANDBOX_DIED, OUTCOME_WALL_TIME, ROLE_GRADER, ExecResult,
                   OutputCollector, Sandbox, SandboxSpec, classify, tar_of_folder)

# Secure defaults, all applied to every container.
AGENT_UID = 1000
AGENT_USER = f"{AGENT_UID}:{AGENT_UID}"
NETWORK_MODE = "none"
CAP_DROP = ["ALL"]
SECURITY_OPT = ["no-new-privileges:true"]
SHM_SIZE = "64m"
NOFILE_LIMIT = 4096
MAX_FILE_BYTES = 1024 * 1024 * 1024  # RLIMIT_FSIZE: no single file over 1 GiB
EXEC_GRACE_SECONDS = 5.0  # host-side wait past the in-container timeout before forcing a kill

WORKSPACE_MOUNT = "/workspace"
TOOLS_MOUNT = "/opt/ctxeval/tools"
DATA_MOUNT = "/data"
GRADER_MOUNT = "/grader"
PRIVATE_MOUNT = "/private"
OUTPUT_MOUNT = "/output"

LABEL_MANAGED = "ctxeval.managed"
LABEL_RUN = "ctxeval.run"
LABEL_EPISODE = "ctxeval.episode"
LABEL_ROLE = "ctxeval.role"

# PID 1: reaps orphans and ignores every signal it has no handler for (namespace init rules).
# It sweeps before every wait, so orphans that died before a SIGCHLD was seen are reaped too.
REAPER = (
    "import os, signal\n"
    "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})\n"
    "while True:\n"
    "    try:\n"
    "        while os.waitpid(-1, os.WNOHANG)[0] > 0:\n"
    "            pass\n"
    "    except ChildProcessError:\n"
    "        pass\n"
    "    signal.sigwait({signal.SIGCHLD})\n"
)

# Runs each command under coreutils `timeout` in its own process group, kills that group when the
# command ends (so nothing it forked lives on unless it left the group on purpose), and reports
# the cgroup's pids-limit and OOM-kill counters before and after on a last stderr line. The
# counters are read with shell builtins only: after a fork bomb, forking may still fail. (The
# image's sh is dash: `kill -s KILL -- -PGID` is the spelling it accepts.)
COUNTERS_MARK = b"\x1ectxeval-exec "
EXEC_WRAPPER = r"""
pe() { P=0; for f in /sys/fs/cgroup/pids/pids.events /sys/fs/cgroup/pids.events; do
  [ -r "$f" ] && { while read k v; do [ "$k" = max ] && P=$v; done < "$f"; return; }; done; }
oe() { O=0; for f in /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events; do
  [ -r "$f" ] && { while read k v; do [ "$k" = oom_kill ] && O=$v; done < "$f"; return; }; done; }
pe; p0=$P; oe; o0=$O
cmd="$1"; shift
exec 3<&0
timeout -k 2 "$CTXEVAL_EXEC_TIMEOUT" bash -c "$cmd" "$@" <&3 3<&- &
t=$!
exec 3<&-
echo "$t" > "/tmp/.ctxeval-exec-$CTXEVAL_EXEC_ID" 2>/dev/null
wait "$t"; rc=$?
for i in 1 2 3 4 5; do kill -s KILL -- "-$t" 2>/dev/null || break; done
pe; oe
printf '\036ctxeval-exec %s %s %s %s %s\n' "$rc" "$p0" "$P" "$o0" "$O" >&2
rm -f "/tmp/.ctxeval-exec-$CTXEVAL_EXEC_ID" 2>/dev/null
exit "$rc"
"""

# Reset (run without the wrapper): stop then kill every process of the agent's uid except this
# shell (PID 1 is immune) until none is left; clear temp space and the workspace; unpack the
# starter from stdin.
KILL_ALL_SCRIPT = r"""
for round in 1 2 3 4 5 6 7 8; do
  kill -STOP -1 2>/dev/null; kill -KILL -1 2>/dev/null
  others=0
  for d in /proc/[0-9]*; do
    p=${d#/proc/}; [ "$p" = 1 ] || [ "$p" = $$ ] || others=1
  done
  [ $others = 0 ] && break
  sleep 0.05
done
"""
RESET_SCRIPT = KILL_ALL_SCRIPT + r"""
for dir in /tmp /dev/shm "$CTXEVAL_WORKSPACE"; do
  chmod -R u+rwX "$dir" 2>/dev/null
  find "$dir" -mindepth 1 -delete 2>/dev/null
done
tar -x -C "$CTXEVAL_WORKSPACE" --no-same-owner --no-same-permissions
"""


class DockerSandbox(Sandbox):
    backend = "docker"
    isolated = True
    workspace_path = WORKSPACE_MOUNT

    def __init__(self, spec: SandboxSpec, client: Any = None, runtime: str | None = None):
        super().__init__(spec)
        if client is None:
            import docker
            client = docker.from_env(timeout=120)
        self.client = client
        self.runtime = runtime
        self.container: Any = None
        self.volume_name: str | None = spec.workspace_source
        self._owns_volume = spec.workspace_source is None
        self._watchdog: threading.Timer | None = None
        self.wall_expired = False
        self.events: list[dict[str, Any]] = []

    # -- lifecycle -------------------------------------------------------------
    def _labels(self) -> dict[str, str]:
        return {LABEL_MANAGED: "1", LABEL_ROLE: self.spec.role, **self.spec.labels}

    def _mounts(self) -> list[Any]:
        from docker.types import Mount

        mounts = [Mount(WORKSPACE_MOUNT, self.volume_name, type="volume",
                        read_only=self.spec.workspace_read_only)]
        for host, target in ((self.spec.tools_dir, TOOLS_MOUNT), (self.spec.data_dir, DATA_MOUNT),
                             (self.spec.grader_dir, GRADER_MOUNT), (self.spec.private_dir, PRIVATE_MOUNT)):
            if host is not None:
                mounts.append(Mount(target, str(Path(host).resolve()), type="bind", read_only=True))
        return mounts

    def environment(self) -> dict[str, str]:
        env = {"CTXEVAL_WORKSPACE": WORKSPACE_MOUNT, "CTXEVAL_TOOLS": TOOLS_MOUNT,
               "CTXEVAL_DATA": DATA_MOUNT, "HOME": "/tmp", "TMPDIR": "/tmp"}
        if self.spec.role == ROLE_GRADER:
            env.update(CTXEVAL_GRADER=GRADER_MOUNT, CTXEVAL_PRIVATE=PRIVATE_MOUNT,
                       CTXEVAL_OUTPUT=OUTPUT_MOUNT)
        return {**env, **self.spec.env}

    def start(self) -> None:
        from docker.types import Ulimit

        limits = self.spec.limits
        if self.volume_name is None:
            self.volume_name = f"ctxeval-ws-{secrets.token_hex(6)}"
            # a tmpfs volume: its size is a hard cap on what the agent can write (a disk fill ends in
            # ENOSPC, not a full host disk). It lives while a container mounts it: the agent's
            # container outlives copy-out and grading.
            self.client.volumes.create(name=self.volume_name, labels=self._labels(), driver="local",
                                       driver_opts={"type": "tmpfs", "device": "tmpfs",
                                                    "o": f"size={limits.workspace_mb}m,uid={AGENT_UID},"
                                                         f"gid={AGENT_UID},mode=0755"})
        tmpfs = {"/tmp": f"rw,nosuid,nodev,size={limits.tmpfs_mb}m,mode=1777"}
        if self.spec.role == ROLE_GRADER:
            tmpfs[OUTPUT_MOUNT] = "rw,nosuid,nodev,size=16m,uid=1000,gid=1000,mode=0755"
        options: dict[str, Any] = dict(
            command=["python3", "-c", REAPER], detach=True, user=AGENT_USER,
            name=f"ctxeval-{self.spec.role}-{secrets.token_hex(5)}", hostname="sandbox",
            network_mode=NETWORK_MODE, read_only=True, cap_drop=CAP_DROP, security_opt=SECURITY_OPT,
            pids_limit=limits.pids, mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m", nano_cpus=int(limits.cpus * 1e9),
            tmpfs=tmpfs, shm_size=SHM_SIZE, mounts=self._mounts(), labels=self._labels(),
            working_dir=WORKSPACE_MOUNT, environment=self.environment(),
            ulimits=[Ulimit(name="nofile", soft=NOFILE_LIMIT, hard=NOFILE_LIMIT),
                     Ulimit(name="fsize", soft=MAX_FILE_BYTES, hard=MAX_FILE_BYTES)],
        )
        if self.runtime:
            options["runtime"] = self.runtime
        try:
            self.container = self.client.containers.run(self.spec.image, **options)
        except Exception:
            self._remove_volume()
            raise
        self.started_at = time.monotonic()
        self._watchdog = threading.Timer(limits.wall_seconds, self._wall_clock_expired)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _wall_clock_expired(self) -> None:
        """Host-side watchdog: the sandbox outlived its wall-clock budget; kill it."""
        self.wall_expired = True
        self.events.append({"event": "watchdog_kill", "after_s": self.spec.limits.wall_seconds})
        try:
            self.container.kill()
        except Exception:
            pass

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except Exception:
                pass
            self.container = None
        self._remove_volume()

    def _remove_volume(self) -> None:
        if self._owns_volume and self.volume_name:
            try:
                self.client.volumes.get(self.volume_name).remove(force=True)
            except Exception:
                pass

    def workspace_handle(self) -> str:
        return self.volume_name

    def alive(self) -> bool:
        try:
            self.container.reload()
            return self.container.status == "running"
        except Exception:
            return False

    # -- exec ------------------------------------------------------------------
    def exec(self, command: str, *, args: list[str] | None = None, timeout: float | None = None,
             stdin: bytes | None = None, env: dict[str, str] | None = None,
             output_cap: int | None = None) -> ExecResult:
        argv = ["sh", "-c", EXEC_WRAPPER, "ctxeval-exec", command, "ctxeval", *(args or [])]
        return self._exec(argv, timeout, stdin, env, output_cap, wrapped=True)

    def _exec(self, argv: list[str], timeout: float | None, stdin: bytes | None,
              env: dict[str, str] | None, output_cap: int | None, wrapped: bool) -> ExecResult:
        limits = self.spec.limits
        timeout = float(timeout or limits.exec_timeout_seconds)
        collector = OutputCollector(output_cap or limits.output_bytes)
        started = time.monotonic()
        if self.wall_expired or self.container is None:
            return collector.result(None, OUTCOME_WALL_TIME if self.wall_expired else OUTCOME_SANDBOX_DIED, 0.0)
        exec_id = secrets.token_hex(6)
        environment = {**(env or {}), "CTXEVAL_EXEC_ID": exec_id, "CTXEVAL_EXEC_TIMEOUT": f"{timeout:g}"}
        api = self.client.api
        try:
            created = api.exec_create(self.container.id, argv, stdin=True, stdout=True, stderr=True,
                                      user=AGENT_USER, environment=environment, workdir=WORKSPACE_MOUNT)
            sock = api.exec_start(created["Id"], socket=True)
        except Exception as exc:
            died = OUTCOME_WALL_TIME if self.wall_expired else OUTCOME_SANDBOX_DIED
            result = collector.result(None, died, time.monotonic() - started)
            result.stderr = f"[ctxeval: exec failed: {exc}]"
            return result
        raw: socket.socket = getattr(sock, "_sock", sock)
        feeder = threading.Thread(target=self._feed_stdin, args=(raw, stdin or b""), daemon=True)
        feeder.start()
        pump = _Pump(self, raw, collector, exec_id if wrapped else None)
        pump.run(started + timeout + EXEC_GRACE_SECONDS)
        raw.close()
        duration = time.monotonic() - started
        exit_code = self._exit_code(created["Id"])
        if self.wall_expired:
            return collector.result(exit_code, OUTCOME_WALL_TIME, duration)
        if (exit_code is None or exit_code >= 126) and not self.alive():  # the container itself is gone
            return collector.result(exit_code, OUTCOME_SANDBOX_DIED, duration)
        counters = pump.counters
        timed_out = pump.timed_out or (exit_code in (124, 137) and duration >= timeout - 0.05)
        outcome = classify(exit_code, timed_out=timed_out, capped=pump.capped,
                           memory_killed=bool(counters) and counters["oom_after"] > counters["oom_before"],
                           pids_limited=bool(counters) and counters["pids_after"] > counters["pids_before"],
                           stderr=collector.raw(2))
        return collector.result(exit_code, outcome, duration)

    @staticmethod
    def _feed_stdin(raw: socket.socket, data: bytes) -> None:
        try:
            if data:
                raw.sendall(data)
            raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _wall_clock_expired_for_exec(self) -> None:
        """An exec that ignores even its group kill: the container goes, the episode records it."""
        self.events.append({"event": "exec_unkillable_container_killed"})
        try:
            self.container.kill()
        except Exception:
            pass

    def _kill_group(self, exec_id: str) -> bool:
        script = f'pid=$(cat /tmp/.ctxeval-exec-{exec_id} 2>/dev/null) && kill -s KILL -- -"$pid"'
        try:
            result = self.container.exec_run(["sh", "-c", script], user=AGENT_USER)
            return result.exit_code == 0
        except Exception:
            return False

    def _exit_code(self, exec_id: str) -> int | None:
        for _ in range(40):
            try:
                info = self.client.api.exec_inspect(exec_id)
            except Exception:
                return None
            if not info.get("Running"):
                return info.get("ExitCode")
            time.sleep(0.05)
        return None

    # -- workspace -------------------------------------------------------------
    def reset(self, starter_dir: Path) -> None:
        result = self._exec(["bash", "-c", RESET_SCRIPT], 60, tar_of_folder(starter_dir), None, None,
                            wrapped=False)
        if result.exit_code != 0:
            raise SandboxError(f"workspace reset failed ({result.outcome}): {result.stderr.strip()[-500:]}")

    def quiesce(self) -> None:
        if self.container is None or not self.alive():
            return
        result = self._exec(["bash", "-c", KILL_ALL_SCRIPT], 30, None, None, None, wrapped=False)
        self.events.append({"event": "quiesce", "outcome": result.outcome})

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(container=getattr(self.container, "name", None), volume=self.volume_name,
                    runtime=self.runtime or "runc")
        return info


class _Pump:
    """Reads one exec's multiplexed stream to EOF, enforcing the output cap and the host deadline."""

    def __init__(self, sandbox: DockerSandbox, raw: socket.socket, collector: OutputCollector,
                 exec_id: str | None):
        self.sandbox, self.raw, self.collector, self.exec_id = sandbox, raw, collector, exec_id
        self.timed_out = self.capped = self.killed_group = False
        self.counters: dict[str, int] = {}

    def _kill(self) -> None:
        if self.exec_id and not self.killed_group:
            self.killed_group = self.sandbox._kill_group(self.exec_id)

    def _stderr(self, payload: bytes) -> bytes:
        """Strip the wrapper's counters line (always the last thing it writes) from stderr."""
        at = payload.find(COUNTERS_MARK) if self.exec_id else -1
        if at < 0:
            return payload
        fields = payload[at + len(COUNTERS_MARK):].split(b"\n", 1)[0].split()
        names = ("rc", "pids_before", "pids_after", "oom_before", "oom_after")
        try:
            self.counters = dict(zip(names, (int(f) for f in fields)))
        except ValueError:
            self.counters = {}
        return payload[:at]

    def run(self, deadline: float) -> None:
        buffer = b""
        self.raw.settimeout(0.25)
        while True:
            if time.monotonic() > deadline:
                self.timed_out = True
                if self.exec_id and not self.killed_group:
                    self._kill()
                    deadline = time.monotonic() + EXEC_GRACE_SECONDS
                    continue
                self.sandbox._wall_clock_expired_for_exec()
                return
            if self.capped and not self.killed_group:
                self._kill()  # the cap was hit before the wrapper had recorded its group: retry
            try:
                chunk = self.raw.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 8:
                size = int.from_bytes(buffer[4:8], "big")
                if len(buffer) < 8 + size:
                    break
                stream, payload, buffer = buffer[0], buffer[8:8 + size], buffer[8 + size:]
                if stream == 2:
                    payload = self._stderr(payload)
                if stream in (1, 2) and payload and self.collector.feed(stream, payload) and not self.capped:
                    self.capped = True
                    self._kill()
