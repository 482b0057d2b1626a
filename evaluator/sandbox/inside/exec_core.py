"""The exec core shared by every in-container program that runs a command (stdlib only).

It is not run on its own: its text is placed before exec_helper.py's (one command per `docker
exec`, the fallback) and supervisor.py's (PID 1, which forks it per command sent over the
channel), so both enforce the same timeout, output cap, group kill and counters.

The command runs as the agent's uid (`bash -c COMMAND ctxeval ARG...`) in its own session, with
no capabilities, in the workspace. The forked helper stays root, so the command cannot stop,
signal or ptrace it. It relays the command's stdout and stderr through pipes only it reads (so a
process left behind cannot hold the exec's streams open), enforces the timeout (SIGTERM to the
group, then SIGKILL 2 s later, like `timeout -k 2`) and the output cap (stdout + stderr together),
and kills what the command left in its group.
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


def drop_bounding_set():
    """Empty the capability bounding set (the container grants CAP_SETPCAP for this), so the
    command's processes hold no capability in any set."""
    import ctypes
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    for cap in range(64):
        prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)


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


def start(command, args, uid, cwd, env, out_w, err_w):
    """Fork the command as `uid` in a new session; returns its pid (also its process group).
    `command` is a bash command line, or a preloaded Python program (a callable taking args)."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
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


class Relay:
    """Copies the command's pipes to this process's stdout/stderr, counting bytes against the cap."""

    def __init__(self, pipes, cap, wake):
        self.open = dict(pipes)  # read end -> our fd (1 or 2)
        self.wake = wake  # readable when a SIGCHLD arrived
        self.cap = cap
        self.sent = 0
        self.bytes = {1: 0, 2: 0}

    @property
    def capped(self):
        return self.bytes[1] + self.bytes[2] > self.cap

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
            target = self.open[fd]
            self.bytes[target] += len(data)
            room = self.cap + 1 - self.sent  # one byte past the cap tells the host it was exceeded
            if room > 0:
                os.write(target, data[:room])
                self.sent += min(room, len(data))

    def close(self):
        for fd in self.open:
            os.close(fd)
        self.open = {}


def child_wakeup():
    """A pipe that becomes readable when a child exits, so the loop never sleeps past it."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
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
        return {"rc": 126, "timed_out": False, "capped": False, "started": False}
    finally:
        os.close(out_w)
        os.close(err_w)
    relay = Relay({out_r: 1, err_r: 2}, cap, wake)
    deadline = time.monotonic() + timeout
    status = ended = kill_at = None
    timed_out = capped = killed_hard = False
    while True:
        now = time.monotonic()
        if status is None:
            done, status_now = os.waitpid(pid, os.WNOHANG)
            if done:
                status, ended = status_now, now
                killpg(pid, signal.SIGKILL)  # whatever it left running in its group
        if status is None and not timed_out and now >= deadline:
            timed_out, kill_at = True, now + KILL_AFTER_SECONDS
            killpg(pid, signal.SIGTERM)
        if status is None and kill_at is not None and now >= kill_at:
            killpg(pid, signal.SIGKILL)
            killed_hard = True
        if relay.capped and not capped:
            capped = True
            killpg(pid, signal.SIGKILL)
        if status is not None and (not relay.open or now >= ended + DRAIN_SECONDS):
            break
        waits = [t - now for t in (deadline, kill_at, ended and ended + DRAIN_SECONDS) if t and t > now]
        relay.pump(min([0.5, *waits]))
    relay.close()
    if os.WIFEXITED(status):
        rc = os.WEXITSTATUS(status)
    else:
        rc = 128 + os.WTERMSIG(status)
    if timed_out:
        rc = 137 if killed_hard else 124  # as `timeout -k`: 137 when the TERM was ignored
    return {"rc": rc, "timed_out": timed_out, "capped": capped, "started": True,
            "stdout_bytes": relay.bytes[1], "stderr_bytes": relay.bytes[2]}


def run_counted(command, args, timeout, cap, uid, cwd, env):
    """run(), with the cgroup's pids-limit and OOM-kill counters read before and after."""
    pids_before, oom_before = counters()
    report = run(command, args, timeout, cap, uid, cwd, env)
    pids_after, oom_after = counters()
    report.update(pids_before=pids_before, pids_after=pids_after, oom_before=oom_before, oom_after=oom_after)
    return report
