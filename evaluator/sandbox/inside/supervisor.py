"""PID 1 of a ctxeval sandbox, and its persistent exec channel (stdlib only; runs as
`python3 -I -S -c SOURCE DEADLINE`; its source is exec_core.py's followed by this file's).

It runs as root inside the container, whose capability set is only KILL, SETUID, SETGID and
SETPCAP; the agent's processes run as another uid with none, so they cannot signal, ptrace or
read it (and it makes itself non-dumpable besides). Its stdin and stdout are the host's attached
stream, which no process of the agent holds. It:
- reaps every orphan (a namespace's init must);
- answers the host, one JSON object per line on stdin, one per line on stdout:
    {"id": N, "op": "ping"}                     -> {"id": N, "ok": true, "uid": 0, "ops": [...]}
    {"id": N, "op": "kill_agent"}               -> stops, then kills, every other process (no fork:
                                                   works when the pids limit is exhausted)
    {"id": N, "op": "set_deadline", "at": T}    -> moves the deadline (UNIX time)
    {"id": N, "op": "exec", "command", "args", "timeout", "cap", "uid", "cwd", "env", "stdin"}
        -> forks a root helper that runs the command with exec_core.run_counted; its output comes
           back as {"id": N, "chunk": 1|2, "data": BASE64} lines, then {"id": N, "done": true,
           "report": {...}} (report null when the helper ended without one; "fork_error" when no
           process could be started)
    {"id": N, "op": "reset", "uid", "dirs", "workspace", "starter": BASE64 (kept: later resets
           may omit it)}
        -> kills every agent process, then a helper with the agent's uid empties `dirs` and the
           workspace, removes the uid's System V IPC objects, unpacks the kept starter and returns
           {"id": N, "ok": true, "digest": SHA256, "killed": K} (the workspace_digest format)
  Commands run concurrently: the loop never waits on one, so kill_agent is answered at once.
- ends the container (by exiting) when its stdin closes (the host process that attached to it is
  gone: the engine closes stdin when that connection drops) or when the deadline passes, so no
  sandbox outlives the process that started it by more than its deadline.
"""
import base64
import ctypes
import hashlib
import io
import tarfile

PR_SET_DUMPABLE = 4
READ_TIMEOUT = 1.0
KILL_ROUNDS = 200
OPS = ("ping", "kill_agent", "set_deadline", "exec", "reset")


def undumpable():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except Exception:
        pass  # root and a different uid already keep the agent out


def reap(*_):
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def live_pids():
    """Every process but this one that is not a zombie."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or name == "1":
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def kill_agent():
    """Stop then kill every other process until none is left; stopping first means a fork loop
    cannot outrun the killing."""
    killed = 0
    for rounds in range(1, KILL_ROUNDS + 1):
        pids = live_pids()
        if not pids:
            return {"ok": True, "killed": killed, "rounds": rounds}
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        killed += len(pids)
        reap()
        time.sleep(0.005)
    return {"ok": False, "killed": killed, "rounds": KILL_ROUNDS, "left": live_pids()[:20]}


# -- in a forked helper ----------------------------------------------------------------------------
def become(uid):
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def stdin_fd(data):
    """The command's stdin: an anonymous in-memory file holding `data` (never the host's stream)."""
    fd = os.memfd_create("ctxeval-stdin", 0)  # inherited by the command (the default is close-on-exec)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def exec_child(request):
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (request.get("env") or {}).items()})
    os.dup2(stdin_fd(base64.b64decode(request.get("stdin") or "")), 0)
    return run_counted(str(request["command"]), [str(a) for a in request.get("args") or []],
                       float(request["timeout"]), int(request["cap"]), int(request["uid"]),
                       str(request.get("cwd") or "/"), env)


def wipe(top):
    """Remove everything below `top`, making each folder writable first (what the uid may remove)."""
    for entry in list(os.scandir(top)):
        if entry.is_dir(follow_symlinks=False):
            try:
                os.chmod(entry.path, 0o700)
            except OSError:
                pass
            wipe(entry.path)
            os.rmdir(entry.path)
        else:
            os.unlink(entry.path)


def remove_ipc():
    """Remove the System V shared memory, queues and semaphores this uid may remove."""
    libc, removed = ctypes.CDLL(None, use_errno=True), 0
    for kind, call in (("shm", lambda i: libc.shmctl(i, 0, None)), ("msg", lambda i: libc.msgctl(i, 0, None)),
                       ("sem", lambda i: libc.semctl(i, 0, 0))):
        try:
            with open(f"/proc/sysvipc/{kind}") as handle:
                ids = [int(line.split()[1]) for line in handle.readlines()[1:] if line.strip()]
        except (OSError, ValueError, IndexError):
            continue
        removed += sum(1 for i in ids if call(i) == 0)
    return removed


def unpack(data, workspace):
    """The starter's regular files and folders (nothing else: no link, no absolute or .. name)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                raise ValueError(f"refused starter entry {member.name!r}")
            target = os.path.join(workspace, *parts)
            if member.isdir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, member.mode & 0o755 | 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(tar.extractfile(member).read())


def digest(workspace):
    """sha256 over "<sha256>  ./<path>" lines of every regular file, sorted by path (DIGEST_COMMAND's)."""
    lines = []
    for folder, dirs, files in os.walk(workspace):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    lines.append((b"./" + os.fsencode(os.path.relpath(path, workspace)),
                                  hashlib.sha256(handle.read()).hexdigest().encode()))
    return hashlib.sha256(b"".join(h + b"  " + p + b"\n" for p, h in sorted(lines))).hexdigest()


def reset_child(request, starter):
    become(int(request["uid"]))
    workspace = str(request["workspace"])
    try:
        os.chmod(workspace, 0o755)
    except OSError:
        pass
    for top in [*request.get("dirs", []), workspace]:
        if os.path.isdir(top):
            wipe(top)
    ipc = remove_ipc()
    unpack(starter, workspace)
    return {"ok": True, "digest": digest(workspace), "ipc_removed": ipc}


class Job:
    """One forked helper: its output pipes, the pipe its report comes on, and how to answer."""

    def __init__(self, request_id, kind, pid, pipes):
        self.request_id, self.kind, self.pid = request_id, kind, pid
        self.pipes = pipes  # read end -> 1 (stdout), 2 (stderr) or 0 (the report)
        self.report = b""


REPORT_FD = 3


def fork_job(request_id, kind, body):
    """Fork a helper running body() -> dict with its stdout and stderr on pipes of their own, and
    nothing else of PID 1's (not the host's stream); the dict comes back on a third pipe."""
    fds = [os.pipe() for _ in range(3)]
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.dup2(fds[1][1], 1)
            os.dup2(fds[2][1], 2)
            os.dup2(fds[0][1], REPORT_FD)
            os.closerange(REPORT_FD + 1, 1 << 16)
            os.close(0)
            report = body()
            os.write(REPORT_FD, json.dumps(report).encode())
            code = 0
        except BaseException as exc:
            try:
                os.write(REPORT_FD, json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}).encode())
            except Exception:
                pass
        os._exit(code)
    for _, write_end in fds:
        os.close(write_end)
    return Job(request_id, kind, pid, {fds[0][0]: 0, fds[1][0]: 1, fds[2][0]: 2})


class Stopped(Exception):
    pass


def stop(*_):
    raise Stopped()


class Supervisor:
    def __init__(self, deadline):
        self.deadline = deadline
        self.buffer = b""
        self.jobs = {}  # read end -> Job
        self.starter = None

    def send(self, message):
        data = json.dumps(message).encode() + b"\n"
        view = memoryview(data)
        while view:
            view = view[os.write(1, view):]

    def answer(self, request):
        """The reply to a request, or None when a forked helper will answer it."""
        op, request_id = request.get("op"), request.get("id")
        if op == "ping":
            return {"ok": True, "uid": os.getuid(), "deadline": self.deadline, "ops": list(OPS)}
        if op == "kill_agent":
            return kill_agent()
        if op == "set_deadline":
            self.deadline = float(request["at"])
            return {"ok": True, "deadline": self.deadline}
        if op == "exec":
            return self.start(request_id, "exec", lambda: exec_child(request))
        if op == "reset":
            if request.get("starter") is not None:
                self.starter = base64.b64decode(request["starter"])
            if self.starter is None:
                return {"ok": False, "error": "no starter was ever sent"}
            killed = kill_agent()
            if not killed["ok"]:
                return {**killed, "error": "processes left after killing"}
            starter = self.starter
            return self.start(request_id, "reset", lambda: reset_child(request, starter))
        return {"ok": False, "error": f"unknown op {op!r}"}

    def start(self, request_id, kind, body):
        try:
            job = fork_job(request_id, kind, body)
        except OSError as exc:  # e.g. the pids limit: nothing could be forked
            return {"done": True, "report": None, "fork_error": str(exc), "ok": False}
        for fd in job.pipes:
            self.jobs[fd] = job
        return None

    def handle(self, line):
        request = {}
        try:
            request = json.loads(line)
            request = request if isinstance(request, dict) else {}
            reply = self.answer(request)
        except Exception as exc:  # a bad request must never end PID 1
            reply = {"ok": False, "done": True, "report": None, "error": f"{type(exc).__name__}: {exc}"}
        if reply is not None:
            reply["id"] = request.get("id")
            self.send(reply)

    def pump(self, fd):
        """Relay what a helper wrote; answer for it once all of its pipes are closed."""
        job = self.jobs[fd]
        data = os.read(fd, 65536)
        if data and job.pipes[fd]:
            self.send({"id": job.request_id, "chunk": job.pipes[fd], "data": base64.b64encode(data).decode()})
            return
        if data:
            job.report += data
            return
        os.close(fd)
        del self.jobs[fd]
        if job not in self.jobs.values():
            self.finish(job)

    def finish(self, job):
        try:
            report = json.loads(job.report) if job.report else None
        except ValueError:
            report = None
        if job.kind == "exec":
            error = report.get("error") if isinstance(report, dict) else "the helper ended with no report"
            if not (isinstance(report, dict) and "rc" in report):
                report = None  # the helper failed before the command ran
            self.send({"id": job.request_id, "done": True, "report": report, **({} if report else {"error": error})})
        else:
            self.send({"id": job.request_id, **(report or {"ok": False, "error": "the helper ended with no report"})})

    def serve(self):
        self.send({"ready": True, "pid": os.getpid(), "uid": os.getuid()})
        while True:
            left = self.deadline - time.time()
            if left <= 0:
                return "deadline"
            ready, _, _ = select.select([0, *self.jobs], [], [], min(left, READ_TIMEOUT))
            reap()
            for fd in ready:
                if fd != 0:
                    self.pump(fd)
                    continue
                chunk = os.read(0, 1 << 20)
                if not chunk:
                    return "host gone"
                self.buffer += chunk
                while b"\n" in self.buffer:
                    line, self.buffer = self.buffer.split(b"\n", 1)
                    if line.strip():
                        self.handle(line)


def main():
    undumpable()
    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, stop)  # `docker stop`; the agent's uid cannot send it
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        reason = Supervisor(float(sys.argv[1])).serve()
    except Stopped:
        reason = "stopped by the engine"
    try:
        os.write(2, f"ctxeval supervisor: ending the sandbox ({reason})\n".encode())
    except OSError:
        pass
    kill_agent()
    os._exit(0)


main()
