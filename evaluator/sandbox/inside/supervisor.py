"""PID 1 of a ctxeval sandbox, and its persistent exec channel (stdlib only; runs as
`python3 -I -S -c SOURCE DEADLINE`; its source is exec_core.py's followed by this file's).

Its source is exec_core.py's, then workspace_ops.py's (reset, wipe), then this file's.
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
    {"id": N, "op": "preload", "script", "paths"} -> imports the Python program's top-level imports
           in PID 1 once; {"id": N, "op": "exec", "program": SCRIPT, ...} then runs it in a forked
           helper as `python3 SCRIPT ARGS` would, with every limit of a command
    {"id": N, "op": "wipe", "uid", "dirs", "root_dirs", "fill": BASE64 tar, "fill_dir"}
        -> kills every agent process, empties `root_dirs` as root (a grader's read-only workspace)
           and unpacks `fill` there as root's, empties `dirs` as `uid`, removes the uid's System V
           IPC objects: {"id": N, "ok": true}
    {"id": N, "op": "read", "path", "max"} -> a regular file's first bytes: {"ok", "size", "data"}
  Commands run concurrently: the loop never waits on one, so kill_agent is answered at once.
- ends the container (by exiting) when its stdin closes (the host process that attached to it is
  gone: the engine closes stdin when that connection drops) or when the deadline passes, so no
  sandbox outlives the process that started it by more than its deadline.
"""
import base64
import ctypes
import stat

PR_SET_DUMPABLE = 4
READ_TIMEOUT = 1.0
KILL_ROUNDS = 200
OPS = ("ping", "kill_agent", "set_deadline", "exec", "reset", "wipe", "preload", "read")


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
def stdin_fd(data):
    """The command's stdin: an anonymous in-memory file holding `data` (never the host's stream)."""
    fd = os.memfd_create("ctxeval-stdin", 0)  # inherited by the command (the default is close-on-exec)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def exec_child(request, program=None):
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (request.get("env") or {}).items()})
    os.dup2(stdin_fd(base64.b64decode(request.get("stdin") or "")), 0)
    return run_counted(program or str(request["command"]), [str(a) for a in request.get("args") or []],
                       float(request["timeout"]), int(request["cap"]), int(request["uid"]),
                       str(request.get("cwd") or "/"), env)


def read_regular_file(path, limit):
    """A regular file's first `limit` bytes (no link followed, never a FIFO or device)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return {"ok": False, "error": exc.strerror}
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return {"ok": False, "error": "not a regular file"}
        data = os.pread(fd, limit, 0)
    finally:
        os.close(fd)
    return {"ok": True, "size": info.st_size, "data": base64.b64encode(data).decode()}


def preload_imports(script, paths):
    """Import what `script` imports at its top level, with the image's site-packages and `paths`
    on the path as a `python3 SCRIPT` run would have them; returns (loaded, failed) names."""
    import ast
    import importlib
    import site
    site.main()
    for path in [os.path.dirname(script), *paths]:
        if path not in sys.path:
            sys.path.insert(0, path)
    with open(script, "rb") as handle:
        tree = ast.parse(handle.read(), script)
    names = [alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module]
    loaded, failed = [], []
    for name in names:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}")
    return loaded, failed


def python_program(script):
    """A launcher of `script` for exec_core.start: run as __main__, its exit code returned."""
    def launch(args):
        import runpy
        import traceback
        sys.argv = [script, *args]
        try:
            runpy.run_path(script, run_name="__main__")
            return 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                return exc.code or 0
            print(exc.code, file=sys.stderr)
            return 1
        except BaseException:
            traceback.print_exc()
            return 1
    return launch


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
        self.programs = {}  # script -> a launcher of it, its imports loaded in this process

    def preload(self, script, paths):
        """Load a Python program's top-level imports here, once, so a forked helper starts it
        without paying them (warm grading). Refused when the imports started threads: forking a
        threaded process is not safe."""
        if script not in self.programs:
            loaded, failed = preload_imports(script, paths)
            if len(os.listdir("/proc/self/task")) > 1:
                return {"ok": False, "error": "the program's imports started threads", "loaded": loaded}
            self.programs[script] = python_program(script)
            self.preload_report = {"loaded": loaded, "failed": failed}
        return {"ok": True, **self.preload_report}

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
            program = self.programs.get(request.get("program")) if "program" in request else None
            if "program" in request and program is None:
                return {"done": True, "report": None, "error": "that program was not preloaded"}
            return self.start(request_id, "exec", lambda: exec_child(request, program))
        if op == "read":
            return read_regular_file(str(request["path"]), int(request["max"]))
        if op == "preload":
            return self.preload(str(request["script"]), [str(p) for p in request.get("paths") or []])
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
        if op == "wipe":
            killed = kill_agent()
            if not killed["ok"]:
                return {**killed, "error": "processes left after killing"}
            return self.start(request_id, "wipe", lambda: wipe_child(request))
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
