"""What PID 1 runs in processes it forks (stdlib only; not run on its own: its text is placed
between workspace_ops.py's and supervisor.py's).

- A command (or a preloaded Python program) PID 1 forks itself, as the agent's uid in its own
  session: exec_core.start, its limits kept by an exec_core.CommandRun that PID 1's event loop
  drives. One fork per command: no helper process sits between PID 1 and the command.
- A helper (reset, wipe) that runs a function as root and reports on a pipe of its own.
Neither holds PID 1's stdin or stdout (the host's stream).
"""
import base64


def stdin_fd(data):
    """The command's stdin: an anonymous in-memory file holding `data` (never the host's stream)."""
    fd = os.memfd_create("ctxeval-stdin", os.MFD_CLOEXEC)  # the command gets it as its fd 0
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class CommandJob:
    """A command PID 1 forked: its CommandRun, its pipes still open, the counters from before it."""

    def __init__(self, request_id, run, pipes, before):
        self.request_id, self.run, self.before = request_id, run, before
        self.pipes = pipes  # read end -> 1 (stdout) or 2 (stderr)
        self.open = set(pipes)


def start_command(request_id, request, program=None):
    """Fork the request's command (or `program`) with the request's environment, stdin and limits."""
    command = program or str(request["command"])
    args = [str(a) for a in request.get("args") or []]
    timeout, cap, uid = float(request["timeout"]), int(request["cap"]), int(request["uid"])
    cwd = str(request.get("cwd") or "/")
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (request.get("env") or {}).items()})
    stdin = stdin_fd(base64.b64decode(request.get("stdin") or ""))
    before = counters()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = start(command, args, uid, cwd, env, out_w, err_w, stdin)
    except OSError:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        for fd in (out_w, err_w, stdin):
            os.close(fd)
    return CommandJob(request_id, CommandRun(pid, timeout, cap, time.monotonic()), {out_r: 1, err_r: 2}, before)


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
            signal.set_wakeup_fd(-1)
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
