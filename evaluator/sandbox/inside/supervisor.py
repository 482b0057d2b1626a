"""PID 1 of a ctxeval sandbox (stdlib only; runs as `python3 -I -S -c SOURCE DEADLINE`).

It runs as root inside the container, whose capability set is only KILL, SETUID and SETGID; the
agent's processes run as another uid with none, so they cannot signal, ptrace or read it (and it
makes itself non-dumpable besides). It:
- reaps every orphan (a namespace's init must);
- answers the host, one JSON object per line on stdin, one per line on stdout:
    {"id": N, "op": "ping"}                     -> {"id": N, "ok": true, "uid": 0, "deadline": T}
    {"id": N, "op": "kill_agent"}               -> stops, then kills, every other process (no fork:
                                                   works when the pids limit is exhausted)
    {"id": N, "op": "set_deadline", "at": T}    -> moves the deadline (UNIX time)
- ends the container (by exiting) when its stdin closes (the host process that attached to it is
  gone: the engine closes stdin when that connection drops) or when the deadline passes, so no
  sandbox outlives the process that started it by more than its deadline.
"""
import ctypes
import json
import os
import select
import signal
import sys
import time

PR_SET_DUMPABLE = 4
READ_TIMEOUT = 1.0
KILL_ROUNDS = 200


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


class Stopped(Exception):
    pass


def stop(*_):
    raise Stopped()


class Supervisor:
    def __init__(self, deadline):
        self.deadline = deadline
        self.buffer = b""

    def answer(self, request):
        op = request.get("op")
        if op == "ping":
            reply = {"ok": True, "uid": os.getuid(), "deadline": self.deadline}
        elif op == "kill_agent":
            reply = kill_agent()
        elif op == "set_deadline":
            self.deadline = float(request["at"])
            reply = {"ok": True, "deadline": self.deadline}
        else:
            reply = {"ok": False, "error": f"unknown op {op!r}"}
        reply["id"] = request.get("id")
        return reply

    def handle(self, line):
        try:
            request = json.loads(line)
            reply = self.answer(request if isinstance(request, dict) else {})
        except Exception as exc:  # a bad request must never end PID 1
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        os.write(1, json.dumps(reply).encode() + b"\n")

    def serve(self):
        os.write(1, json.dumps({"ready": True, "pid": os.getpid(), "uid": os.getuid()}).encode() + b"\n")
        while True:
            left = self.deadline - time.time()
            if left <= 0:
                return "deadline"
            ready, _, _ = select.select([0], [], [], min(left, READ_TIMEOUT))
            reap()
            if not ready:
                continue
            chunk = os.read(0, 65536)
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
