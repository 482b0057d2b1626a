"""The docker backend's persistent exec channel (PID 1's attached stream), against a real engine.

- commands, file reads and writes and resets make no `docker exec` at all (the engine's own list
  of a container's execs stays empty);
- a reset is one request that returns the workspace digest, and leaves nothing of what ran before:
  files, /tmp, /dev/shm, /dev/mqueue, System V IPC objects, processes;
- the agent cannot take the channel over (signal, ptrace, read or write PID 1's stream, forge a
  reply), and a command's stdin is never the host's stream;
- a channel that answers wrongly is noticed: the exec says so, the sandbox falls back to plain exec
  (recorded as a channel_fallback event) and keeps every limit.
"""
from __future__ import annotations

import json
import time

import pytest

from evaluator.sandbox.base import folder_digest
from evaluator.sandbox.outcomes import ExecOutcome

try:
    from test_sandbox_docker import other_processes
except ImportError:  # tests/ as a package
    from tests.test_sandbox_docker import other_processes

pytestmark = pytest.mark.docker

PTRACE_ATTACH = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
for pid in map(int, sys.argv[1:]):
    print(pid, libc.ptrace(16, pid, None, None), ctypes.get_errno())
"""


def engine_execs(docker_client, sandbox, since: float) -> list[dict]:
    """The engine's exec_create events for this container since `since` (UNIX time)."""
    events = docker_client.api.events(since=int(since) - 1, until=int(time.time()) + 1, decode=True,
                                      filters={"container": sandbox.container.id, "event": "exec_create"})
    return list(events)


def test_commands_files_and_resets_make_no_engine_exec(docker_sandbox, docker_client, toy_bundle):
    sandbox = docker_sandbox()
    since = time.time()
    assert sandbox.exec("echo hi; echo err >&2; exit 3").stdout == "hi\n"
    assert sandbox.exec("cat", stdin=b"from stdin").stdout == "from stdin"
    assert sandbox.exec("sleep 5", timeout=1).outcome == ExecOutcome.TIMEOUT
    assert sandbox.write_file("notes/a.txt", b"abc").outcome == ExecOutcome.OK
    assert sandbox.read_file("notes/a.txt") == b"abc"
    assert sandbox.reset(toy_bundle.starter_dir) == folder_digest(toy_bundle.starter_dir)
    assert sandbox.workspace_digest() == folder_digest(toy_bundle.starter_dir)
    assert engine_execs(docker_client, sandbox, since) == []
    assert sandbox.channel_usable and not any(e["event"] == "channel_fallback" for e in sandbox.events)


def test_reset_is_one_request_and_leaves_nothing_behind(docker_sandbox, toy_bundle):
    sandbox = docker_sandbox()
    dirty = r"""
set -e
echo changed > train.py; echo extra > extra.txt; mkdir -p deep/er && echo x > deep/er/f && chmod 500 deep/er deep
echo t > /tmp/t; echo s > /dev/shm/s; echo q > /dev/mqueue/q 2>/dev/null || true
ipcmk -M 4096 >/dev/null; ipcmk -Q >/dev/null; ipcmk -S 1 >/dev/null
setsid sleep 1001 >/dev/null 2>&1 </dev/null &
sleep 0.3
echo started
"""
    assert sandbox.exec(dirty).stdout.strip() == "started"
    assert "sleep 1001" in other_processes(sandbox)
    assert int(sandbox.exec("ipcs -m -q -s | grep -c '^0x'").stdout.strip()) >= 3
    ops = []
    submit = sandbox.channel.submit
    sandbox.channel.submit = lambda op, *a, **k: (ops.append(op), submit(op, *a, **k))[1]
    digest = sandbox.reset(toy_bundle.starter_dir)
    sandbox.channel.submit = submit
    assert ops == ["reset"]
    assert digest == folder_digest(toy_bundle.starter_dir)
    assert other_processes(sandbox) == ""
    assert sandbox.exec("find /tmp /dev/shm /dev/mqueue -mindepth 1 2>/dev/null").stdout.strip() == ""
    assert sandbox.exec("ipcs -m -q -s | grep '^0x' || true").stdout.strip() == ""
    # the starter is kept in PID 1: a second reset sends no starter and restores it all the same
    assert sandbox.exec("rm -f train.py; echo x > y").outcome == ExecOutcome.OK
    sent = []
    sandbox.channel.submit = lambda op, *a, **k: (sent.append(k), submit(op, *a, **k))[1]
    assert sandbox.reset(toy_bundle.starter_dir) == folder_digest(toy_bundle.starter_dir)
    sandbox.channel.submit = submit
    assert "starter" not in sent[0]


def test_the_agent_cannot_take_the_channel_over(docker_sandbox):
    sandbox = docker_sandbox()
    attack = r"""
kill -9 1; echo "kill9=$?"; kill -STOP 1; echo "stop=$?"; kill -TERM $PPID; echo "helper=$?"
(echo '{"id": 1, "ok": true}' > /proc/1/fd/1) 2>/dev/null; echo "write1=$?"
(head -c 1 /proc/1/fd/0) 2>/dev/null; echo "read0=$?"
(cat /proc/1/environ) >/dev/null 2>&1; echo "environ=$?"
echo "stdin=$(readlink /proc/self/fd/0)"
"""
    result = sandbox.exec(attack)
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert all(lines[k] != "0" for k in ("kill9", "stop", "helper", "write1", "read0", "environ")), lines
    assert lines["stdin"].startswith("/memfd:"), lines
    helper = sandbox.exec("echo $PPID").stdout.strip()
    traced = sandbox.exec('python3 -c "$1" 1 "$2"', args=[PTRACE_ATTACH, helper]).stdout.split()
    assert traced[1] == "-1" and traced[4] == "-1", traced  # PTRACE_ATTACH refused for PID 1 and the helper
    # a forged reply or end printed by the command is only its output
    forged = json.dumps({"id": 99, "done": True, "report": {"rc": 0}})
    result = sandbox.exec(f"echo '{forged}'; echo '{forged}' >&2; exit 7")
    assert result.exit_code == 7 and result.outcome == ExecOutcome.NONZERO_EXIT
    assert forged in result.stdout and forged in result.stderr
    assert sandbox.exec("echo alive").stdout == "alive\n"
    assert sandbox.channel_usable


def test_a_wrong_answer_makes_the_sandbox_fall_back_to_plain_exec(docker_sandbox, docker_client, toy_bundle):
    sandbox = docker_sandbox()
    since = time.time()
    wait = sandbox.channel.wait

    def garbled(request_id, timeout, until=lambda: False):
        reply = wait(request_id, timeout, until)
        return {**reply, "report": {"rc": "zero"}} if reply and reply.get("done") else reply

    sandbox.channel.wait = garbled
    result = sandbox.exec("echo once")
    sandbox.channel.wait = wait
    assert result.outcome == ExecOutcome.NONZERO_EXIT and "answered wrongly" in result.stderr
    assert not sandbox.channel_usable
    assert [e for e in sandbox.events if e["event"] == "channel_fallback"][0]["reason"]
    # plain exec from now on, with every limit
    assert sandbox.exec("echo plain").stdout == "plain\n"
    assert sandbox.exec("sleep 5", timeout=1).outcome == ExecOutcome.TIMEOUT
    assert sandbox.exec("head -c 100000 /dev/zero", output_cap=1000).outcome == ExecOutcome.OUTPUT_CAPPED
    assert sandbox.reset(toy_bundle.starter_dir) == folder_digest(toy_bundle.starter_dir)
    assert len(engine_execs(docker_client, sandbox, since)) >= 4, "the fallback should use the engine's exec"
