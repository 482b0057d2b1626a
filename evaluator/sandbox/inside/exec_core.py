"""The exec core shared by every in-container program that runs a command (stdlib only).

It is not run on its own: its text is placed before exec_helper.py's (one command per `docker
exec`, the fallback) and supervisor.py's (PID 1, which forks each command sent over the channel
itself), so both enforce the same timeout, output cap, group kill and counters: `CommandRun` is
those limits as a state machine, driven by `run()`'s loop in the helper and by PID 1's event loop.

The command runs as the agent's uid (`bash -c COMMAND ctxeval ARG...`) in its own session, with
no capabilities, in the workspace. The process that started it (the helper, or PID 1) stays root,
so the command cannot stop, signal or ptrace it. That process relays the command's stdout and
stderr through pipes only it reads (so a process left behind cannot hold the exec's streams
open), enforces the timeout (SIGTERM to the group, then SIGKILL 2 s later, like `timeout -k 2`)
and the output cap (stdout + stderr together), and kills what the command left in its group.
"""
import json
import os
import select
import signal
import sys
import time

PR_CAPBSET_DROP = 24
BASH = "/bin/bash"  # by path: no PATH search (each miss is a lookup on the image's filesystem)
KILL_AFTER_SECONDS = 2.0
DRAIN_SECONDS = 0.2  # output still arriving after the command ended (from what it left outside its group)
PIDS_EVENTS = ("/sys/fs/cgroup/pids/pids.events", "/sys/fs/cgroup/pids.events")
OOM_EVENTS = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")


def counter(paths, key):
    for path in paths:
        try:
            with open(path) as handle:
                for line in handle:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


def counters():
    return counter(PIDS_EVENTS, "max"), counter(OOM_EVENTS, "oom_kill")


def killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


def bounding_set_empty():
    try:
        with open("/proc/self/status") as handle:
            return any(line.split() == ["CapBnd:", "0000000000000000"] for line in handle)
    except OSError:
        return False


BOUNDING_SET_EMPTY = [False]  # inherited by forks: PID 1 empties it once for every helper it forks


def drop_bounding_set():
    """Empty the capability bounding set (the container grants CAP_SETPCAP for this), so the
    command's processes hold no capability in any set. Done once per process line: a process
    forked after it inherits the empty set (and its own permitted set is unchanged by it)."""
    if BOUNDING_SET_EMPTY[0]:
        return
    import ctypes
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    for cap in range(64):
        prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    BOUNDING_SET_EMPTY[0] = bounding_set_empty()


def run_in_process(launch, args, env):
    """Run a preloaded Python program in this forked child as `python3 SCRIPT ARGS` would: its
    environment, signals as a fresh interpreter has them, its exit code."""
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(env)
    code = launch(args)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def start(command, args, uid, cwd, env, out_w, err_w, stdin=None):
    """Fork the command as `uid` in a new session; returns its pid (also its process group).
    `command` is a bash command line, or a preloaded Python program (a callable taking args);
    `stdin` a descriptor for its stdin (None: this process's own)."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        if stdin is not None:
            os.dup2(stdin, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, 1 << 16)
        drop_bounding_set()
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        try:
            os.chdir(cwd)
        except OSError:
            os.chdir("/")
        if callable(command):
            run_in_process(command, args, env)
        os.execve(BASH, ["bash", "-c", command, "ctxeval", *args], env)
    except BaseException as exc:
        os.write(2, f"ctxeval: cannot start the command: {exc}\n".encode())
    os._exit(127)


NOT_STARTED = {"rc": 126, "timed_out": False, "capped": False, "started": False}


class CommandRun:
    """One started command's limits, as a state machine: the timeout (SIGTERM to its group, then
    SIGKILL), the output cap, the kill of what it left in its group, the drain of late output, and
    its report. Driven by run() (the plain helper's loop) and by PID 1's own event loop."""

    def __init__(self, pid, timeout, cap, now):
        self.pid, self.cap = pid, cap
        self.deadline = now + timeout
        self.kill_at = self.status = self.ended = None
        self.timed_out = self.capped = self.killed_hard = False
        self.sent = 0
        self.bytes = {1: 0, 2: 0}

    def output(self, stream, data):
        """Count `data` against the cap; returns the part to relay (one byte past the cap tells
        the host it was exceeded). Past the cap the command's group is killed."""
        self.bytes[stream] += len(data)
        part = data[:max(self.cap + 1 - self.sent, 0)]
        self.sent += len(part)
        if self.bytes[1] + self.bytes[2] > self.cap and not self.capped:
            self.capped = True
            killpg(self.pid, signal.SIGKILL)
        return part

    def exited(self, status, now):
        self.status, self.ended = status, now
        killpg(self.pid, signal.SIGKILL)  # whatever it left running in its group

    def tick(self, now):
        if self.status is None and not self.timed_out and now >= self.deadline:
            self.timed_out, self.kill_at = True, now + KILL_AFTER_SECONDS
            killpg(self.pid, signal.SIGTERM)
        if self.status is None and self.kill_at is not None and now >= self.kill_at:
            killpg(self.pid, signal.SIGKILL)
            self.killed_hard = True

    def finished(self, now, pipes_open):
        return self.status is not None and (not pipes_open or now >= self.ended + DRAIN_SECONDS)

    def next_wake(self, now):
        """Seconds until something is due (at most half a second)."""
        times = (self.deadline, self.kill_at, self.ended and self.ended + DRAIN_SECONDS)
        return min([0.5, *[t - now for t in times if t and t > now]])

    def report(self):
        status = self.status
        rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        if self.timed_out:
            rc = 137 if self.killed_hard else 124  # as `timeout -k`: 137 when the TERM was ignored
        return {"rc": rc, "timed_out": self.timed_out, "capped": self.capped, "started": True,
                "stdout_bytes": self.bytes[1], "stderr_bytes": self.bytes[2]}


class Relay:
    """Copies the command's pipes to this process's stdout/stderr, through the cap's count."""

    def __init__(self, pipes, command, wake):
        self.open = dict(pipes)  # read end -> our fd (1 or 2)
        self.wake = wake  # readable when a SIGCHLD arrived
        self.command = command

    def pump(self, timeout):
        ready, _, _ = select.select([*self.open, self.wake], [], [], timeout)
        for fd in ready:
            if fd == self.wake:
                try:
                    os.read(fd, 4096)
                except OSError:
                    pass
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                os.close(fd)
                del self.open[fd]
                continue
            part = self.command.output(self.open[fd], data)
            if part:
                os.write(self.open[fd], part)

    def close(self):
        for fd in self.open:
            os.close(fd)
        self.open = {}


def child_wakeup(on_child=lambda *_: None):
    """A pipe that becomes readable when a child exits (`on_child` handles SIGCHLD), so the loop
    never sleeps past it."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, on_child)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    return wake_r


def run(command, args, timeout, cap, uid, cwd, env):
    wake = child_wakeup()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = start(command, args, uid, cwd, env, out_w, err_w)
    except OSError as exc:  # e.g. the pids limit: the fork itself failed
        os.write(2, f"ctxeval: cannot start the command: {exc}\n".encode())
        return dict(NOT_STARTED)
    finally:
        os.close(out_w)
        os.close(err_w)
    command_run = CommandRun(pid, timeout, cap, time.monotonic())
    relay = Relay({out_r: 1, err_r: 2}, command_run, wake)
    while True:
        now = time.monotonic()
        if command_run.status is None:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                command_run.exited(status, now)
        command_run.tick(now)
        if command_run.finished(now, bool(relay.open)):
            break
        relay.pump(command_run.next_wake(now))
    relay.close()
    return command_run.report()


def counted(report, before):
    """A report with the cgroup's pids-limit and OOM-kill counters from before and after."""
    (pids_before, oom_before), (pids_after, oom_after) = before, counters()
    report.update(pids_before=pids_before, pids_after=pids_after, oom_before=oom_before, oom_after=oom_after)
    return report


def run_counted(command, args, timeout, cap, uid, cwd, env):
    """run(), with the cgroup's pids-limit and OOM-kill counters read before and after."""
    before = counters()
    return counted(run(command, args, timeout, cap, uid, cwd, env), before)
