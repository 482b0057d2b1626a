"""PID 1 of a ctxeval sandbox, and its persistent exec channel (stdlib only; runs as
`python3 -I -S -c SOURCE DEADLINE`; its source is exec_core.py's, then workspace_ops.py's
(reset, wipe), then jobs.py's (what it forks), then this file's).

It runs as root inside the container, whose capability set is only KILL, SETUID, SETGID and
SETPCAP (it empties its capability bounding set at start, so nothing it forks can gain one by
exec); the agent's processes run as another uid with none, so they cannot signal, ptrace or
read it (and it makes itself non-dumpable besides). Its stdin and stdout are the host's attached
stream, which no process of the agent holds. It:
- reaps every orphan (a namespace's init must);
- answers the host, one JSON object per line on stdin, one per line on stdout:
    {"id": N, "op": "ping"}                     -> {"id": N, "ok": true, "uid": 0, "ops": [...]}
    {"id": N, "op": "kill_agent"}               -> stops, then kills, every other process (no fork:
                                                   works when the pids limit is exhausted)
    {"id": N, "op": "set_deadline", "at": T}    -> moves the deadline (UNIX time)
    {"id": N, "op": "exec", "command", "args", "timeout", "cap", "uid", "cwd", "env", "stdin"}
        -> forks the command (jobs.start_command) and keeps its limits (exec_core.CommandRun) in
           this loop; its output comes back as {"id": N, "chunk": 1|2, "data": BASE64} lines, then
           {"id": N, "done": true, "report": {...}} ("fork_error" when no process could be started)
    {"id": N, "op": "reset", "uid", "dirs", "workspace", "starter": BASE64 (kept: later resets
           may omit it)}
        -> kills every agent process, then a helper with the agent's uid empties `dirs` and the
           workspace, removes the uid's System V IPC objects, unpacks the kept starter and returns
           {"id": N, "ok": true, "digest": SHA256, "killed": K} (the workspace_digest format)
    {"id": N, "op": "preload", "script", "paths"} -> imports the Python program's top-level imports
           in PID 1 once; {"id": N, "op": "exec", "program": SCRIPT, ...} then runs it in a process
           forked from PID 1 as `python3 SCRIPT ARGS` would, with every limit of a command
    {"id": N, "op": "wipe", "uid", "dirs", "root_dirs", "fill": BASE64 tar, "fill_dir"}
        -> kills every agent process, empties `root_dirs` as root (a grader's read-only workspace)
           and unpacks `fill` there as root's, empties `dirs` as `uid`, removes the uid's System V
           IPC objects: {"id": N, "ok": true}
    {"id": N, "op": "read", "path", "max"} -> a regular file's first bytes: {"ok", "size", "data"}
  Commands run concurrently: the loop never waits on one, so kill_agent is answered at once.
  A command's exit reaches the loop through reap() (SIGCHLD, whose wake-up pipe ends select).
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


EXITED = {}  # pid -> (wait status, when): what reap() collected, for the commands PID 1 forked


def reap(*_):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        EXITED[pid] = (status, time.monotonic())


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


class Stopped(Exception):
    pass


def stop(*_):
    raise Stopped()


class Supervisor:
    def __init__(self, deadline):
        self.deadline = deadline
        self.buffer = b""
        self.jobs = {}  # read end -> Job or CommandJob
        self.commands = {}  # pid -> CommandJob
        self.wake = child_wakeup(reap)
        self.starter = None
        self.programs = {}  # script -> a launcher of it, its imports loaded in this process
        self.preloaded = {}  # script -> what its preload loaded and what failed

    def preload(self, script, paths):
        """Load a Python program's top-level imports here, once, so a process forked from here starts it
        without paying them (warm grading). Refused when the imports started threads: forking a
        threaded process is not safe."""
        if script not in self.programs:
            loaded, failed = preload_imports(script, paths)
            if len(os.listdir("/proc/self/task")) > 1:
                return {"ok": False, "error": "the program's imports started threads", "loaded": loaded}
            self.programs[script] = python_program(script)
            self.preloaded[script] = {"loaded": loaded, "failed": failed}
        return {"ok": True, **self.preloaded[script]}

    def send(self, message):
        data = json.dumps(message).encode() + b"\n"
        view = memoryview(data)
        while view:
            view = view[os.write(1, view):]

    def answer(self, request):
        """The reply to a request, or None when a forked command or helper will answer it."""
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
            return self.start_command(request_id, request, program)
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

    def start_command(self, request_id, request, program):
        try:
            job = start_command(request_id, request, program)
        except OSError as exc:  # e.g. the pids limit: nothing could be forked
            return {"done": True, "report": None, "fork_error": str(exc), "ok": False}
        self.commands[job.run.pid] = job
        for fd in job.pipes:
            self.jobs[fd] = job
        return None

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
        """Relay what a command or helper wrote; answer for a helper once all of its pipes are
        closed (for a command, tend_commands answers)."""
        job = self.jobs[fd]
        data = os.read(fd, 65536)
        if isinstance(job, CommandJob):
            part = job.run.output(job.pipes[fd], data) if data else b""
            if part:
                self.send_chunk(job, fd, part)
            elif not data:
                self.close_pipe(job, fd)
            return
        if data and job.pipes[fd]:
            self.send_chunk(job, fd, data)
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
        self.send({"id": job.request_id, **(report or {"ok": False, "error": "the helper ended with no report"})})

    def send_chunk(self, job, fd, data):
        self.send({"id": job.request_id, "chunk": job.pipes[fd], "data": base64.b64encode(data).decode()})

    def close_pipe(self, job, fd):
        os.close(fd)
        del self.jobs[fd]
        job.open.discard(fd)

    def tend_commands(self):
        """Give each command its exit status, its due signals, and its answer once it is done."""
        now = time.monotonic()
        for pid in list(EXITED):
            status, when = EXITED.pop(pid)
            job = self.commands.get(pid)
            if job is not None and job.run.status is None:
                job.run.exited(status, when)
        for pid, job in list(self.commands.items()):
            job.run.tick(now)
            if job.run.finished(now, bool(job.open)):
                for fd in list(job.open):
                    self.close_pipe(job, fd)
                del self.commands[pid]
                self.send({"id": job.request_id, "done": True, "report": counted(job.run.report(), job.before)})

    def next_wake(self):
        now = time.monotonic()
        return min([self.deadline - time.time(), READ_TIMEOUT, *[j.run.next_wake(now) for j in self.commands.values()]])

    def serve(self):
        self.send({"ready": True, "pid": os.getpid(), "uid": os.getuid()})
        while True:
            wait = self.next_wake()
            if self.deadline <= time.time():
                return "deadline"
            ready, _, _ = select.select([0, self.wake, *self.jobs], [], [], max(wait, 0))
            reap()
            for fd in ready:
                if fd == self.wake:
                    os.read(fd, 4096)
                    continue
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
            self.tend_commands()


def main():
    undumpable()
    drop_bounding_set()  # once: each helper forked from here inherits the empty set
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
