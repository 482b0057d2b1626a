"""The docker backend's hardening, proven from INSIDE a real container, and the episode carrying on.

Every test here asserts behaviour that would fail if a default were dropped (network, user,
capabilities, read-only rootfs, limits, reset, watchdog, labels, cleanup, safe copy-out).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from evaluator.sandbox import SandboxSpec, create_sandbox
from evaluator.sandbox.outcomes import ExecOutcome
from evaluator.sandbox.base import DEADLINE_GRACE_SECONDS
from evaluator.sandbox.docker import (DATA_MOUNT, LABEL_DEADLINE, LABEL_MANAGED, LABEL_ROLE, LABEL_RUN, SUPERVISOR_CAPS,
                                      TOOLS_MOUNT)

try:
    from conftest import SMALL_LIMITS
except ImportError:  # tests/ as a package
    from tests.conftest import SMALL_LIMITS

pytestmark = pytest.mark.docker

# `bomb` returns at once (its pipelines run in the background): the `sleep` keeps the command alive
# long enough for the bomb to reach the pids limit, and the exec must still kill the whole group.
FORK_BOMB = "bomb() { bomb | bomb & }; bomb; sleep 4"
MEMORY_HOG_MB = 3 * SMALL_LIMITS.memory_mb  # well over the cgroup limit, far under host RAM


def memory_hog(mb: int) -> str:
    # bytes * n writes every page, so the allocation really is resident (unlike calloc'd zeros)
    return f"python3 -c 'x = b\"x\" * ({mb} * 1024 * 1024); print(len(x))'"


def still_works(sandbox, within: float = 10.0) -> None:
    """After a kill storm the sandbox answers again (killed processes take a moment to be reaped)."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = sandbox.exec("echo ok", timeout=5)
        if last.outcome == ExecOutcome.OK and last.stdout.strip() == "ok":
            return
        time.sleep(0.5)
    pytest.fail(f"the sandbox did not recover within {within}s: {last}")


def sha_listing(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def parse_sha256sum(text: str) -> dict[str, str]:
    listing = {}
    for line in text.splitlines():
        digest, name = line.split(None, 1)
        listing[name.strip().removeprefix("./")] = digest
    return listing


PROCESS_CHECK = r"""
import os, sys
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    name, rest = text[text.index("(") + 1:text.rindex(")")], text.rsplit(")", 1)[1].split()
    return name, rest[0], int(rest[1])  # comm, state, ppid
mine, pid = set(), os.getpid()
while pid > 0:
    mine.add(pid)
    pid = stat(pid)[2]
for entry in sorted(os.listdir("/proc"), key=lambda e: (len(e), e)):
    if entry.isdigit() and int(entry) != 1 and int(entry) not in mine:
        try:
            name, state, ppid = stat(entry)
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue  # gone meanwhile
        if state == "Z" and sys.argv[1:] == ["--alive"]:
            continue
        print(entry, state, f"ppid={ppid}", cmdline or f"[{name}]")
"""


def other_processes(sandbox, alive_only: bool = False) -> str:
    """Every process but PID 1 and the checking exec's own chain ("pid state ppid cmdline" lines,
    "" when none); zombies included unless `alive_only`."""
    result = sandbox.exec('python3 -c "$1" "$2"', args=[PROCESS_CHECK, "--alive" if alive_only else ""],
                          timeout=10)
    assert result.outcome == ExecOutcome.OK, result
    return result.stdout.strip()


# -- network -------------------------------------------------------------------------------------

def test_no_network_inside_container(docker_sandbox):
    sandbox = docker_sandbox()
    probe = r"""
import json, socket
out = {}
for host in ("1.1.1.1", "172.17.0.1"):
    try:
        socket.create_connection((host, 80), timeout=3).close()
        out[host] = "connected"
    except OSError as exc:
        out[host] = f"refused: {exc}"
try:
    out["dns"] = "resolved: " + str(socket.getaddrinfo("example.com", 80))
except OSError as exc:
    out["dns"] = f"failed: {exc}"
print(json.dumps(out))
"""
    result = sandbox.exec('python3 -c "$1"', args=[probe], timeout=15)
    assert result.outcome == ExecOutcome.OK, result
    out = json.loads(result.stdout)
    assert out["1.1.1.1"].startswith("refused"), out
    assert out["172.17.0.1"].startswith("refused"), out
    assert out["dns"].startswith("failed"), out

    interfaces = sandbox.exec("ls /sys/class/net")
    assert interfaces.stdout.split() == ["lo"]
    dev = sandbox.exec("tail -n +3 /proc/net/dev")
    names = [line.split(":")[0].strip() for line in dev.stdout.splitlines() if ":" in line]
    assert names == ["lo"], dev.stdout


# -- identity and privileges ---------------------------------------------------------------------

def test_unprivileged_user_no_capabilities_no_new_privs(docker_sandbox):
    sandbox = docker_sandbox()
    assert sandbox.exec("id -u").stdout.strip() == "1000"
    assert sandbox.exec("id -g").stdout.strip() == "1000"
    status = dict(line.split(":", 1) for line in sandbox.exec("cat /proc/self/status").stdout.splitlines()
                  if ":" in line)
    for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
        assert int(status[cap].strip(), 16) == 0, (cap, status[cap])
    assert status["NoNewPrivs"].strip() == "1"
    # PID 1 (the supervisor) and the exec helpers are another uid, which the agent cannot signal
    assert sandbox.exec("stat -c %u /proc/1").stdout.strip() == "0"
    assert "Operation not permitted" in sandbox.exec("kill -STOP 1").stderr


# -- filesystem ----------------------------------------------------------------------------------

def test_rootfs_read_only_workspace_and_tmp_writable_tmp_bounded(docker_sandbox):
    sandbox = docker_sandbox()
    for target in ("/etc/x", "/usr/x", "/home/agent/x", "/x"):
        result = sandbox.exec('touch "$1"', args=[target])
        assert result.outcome == ExecOutcome.NONZERO_EXIT, (target, result)
        assert "Read-only file system" in result.stderr, (target, result.stderr)
    for target in ("/workspace/x", "/tmp/x", "/dev/shm/x"):
        result = sandbox.exec('echo hi > "$1" && cat "$1"', args=[target])
        assert result.outcome == ExecOutcome.OK and result.stdout.strip() == "hi", (target, result)

    too_big = SMALL_LIMITS.tmpfs_mb + 8
    result = sandbox.exec(f"head -c {too_big}M /dev/zero > /tmp/big", timeout=15)
    assert result.outcome == ExecOutcome.DISK_FULL, result
    assert "No space left on device" in result.stderr
    size = int(sandbox.exec("stat -c %s /tmp/big").stdout.strip())
    assert size <= SMALL_LIMITS.tmpfs_mb * 1024 * 1024
    size_kb = sandbox.exec("df -k /tmp | tail -1").stdout.split()[1]
    assert int(size_kb) == SMALL_LIMITS.tmpfs_mb * 1024
    # the workspace is bounded too (a size-capped tmpfs volume), not by the host's disk
    fill = sandbox.exec(f"head -c {SMALL_LIMITS.workspace_mb + 8}M /dev/zero > /workspace/big", timeout=30)
    assert fill.outcome == ExecOutcome.DISK_FULL, fill
    assert int(sandbox.exec("df -m /workspace | tail -1").stdout.split()[1]) == SMALL_LIMITS.workspace_mb
    assert sandbox.exec("rm /workspace/big && echo hi > /workspace/after && cat /workspace/after").stdout == "hi\n"


def test_bundle_tools_and_data_mounted_read_only(docker_sandbox, toy_bundle, toy_data):
    sandbox = docker_sandbox()
    env = sandbox.exec('echo "$CTXEVAL_TOOLS $CTXEVAL_DATA"').stdout.split()
    assert env == [TOOLS_MOUNT, DATA_MOUNT]

    tools = sandbox.exec('ls "$CTXEVAL_TOOLS"').stdout.split()
    assert sorted(tools) == sorted(p.name for p in toy_bundle.tools_dir.iterdir())
    data = sandbox.exec('ls "$CTXEVAL_DATA"').stdout.split()
    assert sorted(data) == sorted(p.name for p in Path(toy_data.public).iterdir())
    assert data, "the public data folder is empty"

    for variable in ("CTXEVAL_TOOLS", "CTXEVAL_DATA"):
        result = sandbox.exec(f'touch "${variable}/x"')
        assert result.outcome == ExecOutcome.NONZERO_EXIT and "Read-only file system" in result.stderr, result
        first = sandbox.exec(f'ls "${variable}" | head -1').stdout.strip()
        result = sandbox.exec(f'echo gone >> "${variable}/{first}"')
        assert result.outcome == ExecOutcome.NONZERO_EXIT, result
        assert "Read-only file system" in result.stderr or "Permission denied" in result.stderr, result
        result = sandbox.exec(f'rm -f "${variable}/{first}"')
        assert result.outcome == ExecOutcome.NONZERO_EXIT, result
    mounts = {line.split()[1]: line.split()[3].split(",") for line in
              sandbox.exec("cat /proc/mounts").stdout.splitlines()}
    assert "ro" in mounts[TOOLS_MOUNT] and "ro" in mounts[DATA_MOUNT], mounts
    assert "rw" in mounts["/workspace"] and "ro" in mounts["/"]
    # the host files are intact
    assert not (toy_bundle.tools_dir / "x").exists()
    assert not (Path(toy_data.public) / "x").exists()


# -- resource limits -----------------------------------------------------------------------------

def test_fork_bomb_hits_pids_limit_and_sandbox_survives(docker_sandbox):
    sandbox = docker_sandbox()
    started = time.monotonic()
    result = sandbox.exec(FORK_BOMB, timeout=5)
    assert result.outcome == ExecOutcome.PIDS_LIMIT, result
    assert time.monotonic() - started < 20
    still_works(sandbox)
    assert sandbox.alive()


def test_exec_kills_what_it_left_in_its_process_group(docker_sandbox):
    """The wrapper kills the command's process group when it ends: a plain `&` does not outlive it."""
    sandbox = docker_sandbox()
    result = sandbox.exec("sleep 1000 >/dev/null 2>&1 </dev/null & "
                          "nohup sleep 1002 >/dev/null 2>&1 </dev/null & echo started")
    assert result.outcome == ExecOutcome.OK and result.stdout.strip() == "started", result
    deadline = time.monotonic() + 3
    while (left := other_processes(sandbox, alive_only=True)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == "", f"background processes outlived their exec:\n{left}"


def test_reaper_reaps_orphans_right_from_container_start(docker_sandbox):
    """PID 1 reaps orphans (else zombies pile up, hold pids and count against the pids limit).

    One spawn per fresh container, checked before anything else dies: orphans that die right
    after start, before the reaper first waits, are the ones a reaper without an initial sweep
    misses (a later SIGCHLD would sweep them up and hide the miss). Timing-dependent, so a few tries.
    """
    zombies = []
    for _ in range(3):
        sandbox = docker_sandbox()
        result = sandbox.exec("(true &); (true &); echo spawned")
        assert result.stdout.strip() == "spawned"
        deadline = time.monotonic() + 1.5
        while (left := other_processes(sandbox)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if left:
            zombies.append(left)
        sandbox.stop()
    assert zombies == [], f"unreaped processes in {len(zombies)}/3 fresh sandboxes: {zombies}"


def test_memory_hog_is_oom_killed_and_sandbox_survives(docker_sandbox):
    sandbox = docker_sandbox()
    result = sandbox.exec(memory_hog(MEMORY_HOG_MB), timeout=30)
    assert result.outcome == ExecOutcome.MEMORY_KILLED, result
    assert result.exit_code != 0
    still_works(sandbox)
    assert sandbox.alive()


def test_timeout_and_sigterm_ignoring_process(docker_sandbox):
    sandbox = docker_sandbox()
    started = time.monotonic()
    result = sandbox.exec("sleep 3600", timeout=2)
    assert result.outcome == ExecOutcome.TIMEOUT, result
    assert 2 <= result.duration_s < 15 and time.monotonic() - started < 15

    stubborn = ("import signal, time\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "print('armed', flush=True)\n"
                "time.sleep(3600)\n")
    started = time.monotonic()
    result = sandbox.exec('python3 -c "$1"', args=[stubborn], timeout=2)
    assert result.stdout.strip() == "armed"
    assert result.outcome == ExecOutcome.TIMEOUT, result
    assert result.exit_code == 137  # the -k KILL, not the TERM, ended it
    assert time.monotonic() - started < 15
    # nothing of it lives on
    assert other_processes(sandbox) == ""


def test_output_flood_is_capped(docker_sandbox):
    sandbox = docker_sandbox()
    cap = SMALL_LIMITS.output_bytes
    for flood in ("yes", "head -c 10M /dev/zero | tr '\\0' x"):
        started = time.monotonic()
        result = sandbox.exec(flood, timeout=15)
        elapsed = time.monotonic() - started
        assert result.outcome == ExecOutcome.OUTPUT_CAPPED, (flood, result.outcome)
        assert result.stdout_bytes > cap
        assert len(result.raw_stdout) <= cap
        body, _, note = result.stdout.rpartition("\n[ctxeval: output capped")
        assert len(body.encode()) <= cap
        assert note, "the capped output carries no note"
        assert elapsed < 10, (flood, elapsed)
    still_works(sandbox)


# -- exec arguments and files --------------------------------------------------------------------

def test_exec_args_are_not_evaluated(docker_sandbox):
    sandbox = docker_sandbox()
    hostile = ['a b  "c" \'d\' $(touch /tmp/pwned) `touch /tmp/pwned2` ; touch /tmp/pwned3 $HOME \\n',
               "", "-n", "--", "*"]
    result = sandbox.exec('printf "<%s>\\n" "$@"; echo "count=$#"', args=hostile)
    assert result.outcome == ExecOutcome.OK, result
    lines = result.stdout.splitlines()
    assert lines[:-1] == [f"<{a}>" for a in hostile]
    assert lines[-1] == f"count={len(hostile)}"
    assert sandbox.exec("ls -A /tmp | grep pwned || true").stdout.strip() == ""


def test_write_and_read_file_round_trip(docker_sandbox):
    sandbox = docker_sandbox()
    text = "héllo\nworld\n"
    assert sandbox.write_file("notes/a.txt", text.encode()).outcome == ExecOutcome.OK
    assert sandbox.read_file("notes/a.txt") == text.encode()
    assert sandbox.read_file("/workspace/notes/a.txt") == text.encode()

    binary = bytes(range(256)) * 64 + b"\x00\r\n\x1b" + os.urandom(4096)
    assert sandbox.write_file("/tmp/blob.bin", binary).outcome == ExecOutcome.OK
    assert sandbox.read_file("/tmp/blob.bin") == binary
    assert sandbox.exec("stat -c %s /tmp/blob.bin").stdout.strip() == str(len(binary))
    assert sandbox.exec("stat -c %u notes/a.txt").stdout.strip() == "1000"

    assert sandbox.read_file("does/not/exist") is None
    assert sandbox.read_file("/etc/shadow") is None  # unreadable for the agent
    assert sandbox.read_file("/tmp/blob.bin", max_bytes=100) == binary[:100]


# -- reset ---------------------------------------------------------------------------------------

def test_reset_restores_starter_clears_temp_and_kills_processes(docker_sandbox, toy_bundle):
    sandbox = docker_sandbox()
    starter = sha_listing(toy_bundle.starter_dir)
    dirty = r"""
set -e
echo changed > train.py
echo extra > extra.txt
echo hidden > .hidden
mkdir -p deep/er && echo x > deep/er/file && chmod 500 deep/er deep
echo t > /tmp/tmpfile && mkdir -p /tmp/d && echo t > /tmp/d/.x
echo s > /dev/shm/shmfile
nohup sleep 1000 >/dev/null 2>&1 </dev/null &
setsid sleep 1001 >/dev/null 2>&1 </dev/null &
setsid bash -c 'trap "" TERM HUP; while :; do sleep 1; done' >/dev/null 2>&1 </dev/null &
sleep 0.5  # let the setsid children leave the exec's process group before it ends
echo started
"""
    assert sandbox.exec(dirty).stdout.strip() == "started"
    time.sleep(0.3)
    before = other_processes(sandbox)
    assert "sleep 1001" in before, "the setsid process should have outlived its exec (else the test proves nothing)"

    sandbox.reset(toy_bundle.starter_dir)

    listing = sandbox.exec("cd /workspace && find . -type f -exec sha256sum {} + | sort")
    assert listing.outcome == ExecOutcome.OK, listing
    assert parse_sha256sum(listing.stdout) == starter
    assert sandbox.exec("cd /workspace && find . -mindepth 1 -type d").stdout.strip() == ""
    leftovers = sandbox.exec("find /tmp /dev/shm -mindepth 1 ! -name '.ctxeval-exec-*'")
    assert leftovers.stdout.strip() == "", leftovers.stdout
    assert other_processes(sandbox) == ""
    # the workspace is still the agent's
    assert sandbox.exec("stat -c %u /workspace/train.py").stdout.strip() == "1000"
    assert sandbox.write_file("after.txt", b"ok").outcome == ExecOutcome.OK


# -- host-side watchdog --------------------------------------------------------------------------

def test_wall_clock_watchdog_ends_every_agent_process_and_keeps_the_workspace(docker_sandbox, docker_client):
    sandbox = docker_sandbox(dataclasses.replace(SMALL_LIMITS, wall_seconds=3))
    assert sandbox.exec("echo kept > kept.txt").outcome == ExecOutcome.OK
    started = time.monotonic()
    result = sandbox.exec("sleep 30", timeout=60)
    assert result.outcome == ExecOutcome.WALL_TIME, result
    assert time.monotonic() - started < 10
    assert sandbox.wall_expired
    assert any(e["event"] == "watchdog_kill" for e in sandbox.events)
    # later execs say so at once instead of hanging
    again = sandbox.exec("echo ok")
    assert again.outcome == ExecOutcome.WALL_TIME and again.duration_s < 1
    # the agent's processes are gone, but its workspace is still there to be graded
    top = docker_client.api.top(sandbox.container.id)
    assert [p for p in top["Processes"] if p[-1].startswith("sleep")] == []
    assert len(top["Processes"]) == 1  # PID 1 alone
    copy = sandbox.copy_out(Path(tempfile.mkdtemp()) / "out")
    assert copy.copied == ["kept.txt"]


# -- container configuration ---------------------------------------------------------------------

def test_container_host_config_labels_and_stop(docker_sandbox, docker_client):
    import docker.errors

    sandbox = docker_sandbox()
    info = docker_client.api.inspect_container(sandbox.container.id)
    host = info["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert sorted(host["CapAdd"]) == sorted(SUPERVISOR_CAPS)  # PID 1's and the helpers'; the agent holds none
    assert host["Privileged"] is False
    assert any(opt.startswith("no-new-privileges") for opt in host["SecurityOpt"]), host["SecurityOpt"]
    assert host["PidsLimit"] == SMALL_LIMITS.pids
    assert host["Memory"] == SMALL_LIMITS.memory_mb * 1024 * 1024
    assert host["MemorySwap"] == SMALL_LIMITS.memory_mb * 1024 * 1024
    assert host["NanoCpus"] == int(SMALL_LIMITS.cpus * 1e9)
    assert f"size={SMALL_LIMITS.tmpfs_mb}m" in host["Tmpfs"]["/tmp"]
    assert not host.get("Binds")
    assert host["AutoRemove"] is True
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}}
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/workspace"]["Type"] == "volume" and mounts["/workspace"]["RW"] is True
    workspace_volume = mounts["/workspace"]["Name"]
    for target in (TOOLS_MOUNT, DATA_MOUNT):
        assert mounts[target]["RW"] is False, mounts[target]
    assert info["Config"]["User"] == "0:0"  # PID 1; every command runs as 1000 (test above)
    assert info["Config"]["OpenStdin"] is True and info["Config"]["StdinOnce"] is True

    labels = info["Config"]["Labels"]
    assert labels[LABEL_MANAGED] == "1"
    assert labels[LABEL_ROLE] == "agent"
    assert labels[LABEL_RUN].startswith("pytest-")
    assert abs(float(labels[LABEL_DEADLINE]) - (time.time() + SMALL_LIMITS.wall_seconds + DEADLINE_GRACE_SECONDS)) < 60

    container_id = sandbox.container.id
    sandbox.stop()
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(container_id)
    with pytest.raises(docker.errors.NotFound):  # the workspace went with it
        docker_client.volumes.get(workspace_volume)


# -- cleanup after a crash -----------------------------------------------------------------------

def test_cleanup_removes_a_run_whose_sandboxes_could_not_end_themselves(docker_client, toy_image):
    from evaluator.sandbox.cleanup import cleanup

    run_id = f"pytest-crash-{secrets.token_hex(6)}"
    filters = {"label": [f"{LABEL_RUN}={run_id}"]}
    spec = SandboxSpec(image=toy_image.tag, limits=dataclasses.replace(SMALL_LIMITS, wall_seconds=120),
                       labels={LABEL_RUN: run_id})
    sandbox = create_sandbox("docker", spec, client=docker_client)
    try:
        sandbox.start()
        sandbox._watchdog.cancel()  # a crashed evaluator has no watchdog either
        name = sandbox.container.name
        assert sandbox.exec("echo alive").stdout.strip() == "alive"
        docker_client.api.pause(sandbox.container.id)  # frozen: it cannot end itself
        sandbox.channel.close()  # the "crash": the driver hangs up, stop() is never called
        time.sleep(1)
        assert [c.name for c in docker_client.containers.list(all=True, filters=filters)] == [name]

        report = cleanup(client=docker_client, run_id=run_id)
        assert report.containers == [name]
        assert docker_client.containers.list(all=True, filters=filters) == []
    finally:
        for container in docker_client.containers.list(all=True, filters=filters):
            container.remove(force=True, v=True)


def test_a_sandbox_ends_itself_when_its_driver_hangs_up(docker_client, toy_image):
    run_id = f"pytest-hangup-{secrets.token_hex(6)}"
    spec = SandboxSpec(image=toy_image.tag, limits=SMALL_LIMITS, labels={LABEL_RUN: run_id})
    sandbox = create_sandbox("docker", spec, client=docker_client)
    sandbox.start()
    sandbox._watchdog.cancel()
    volume = next(m["Name"] for m in docker_client.api.inspect_container(sandbox.container.id)["Mounts"]
                  if m["Destination"] == "/workspace")
    sandbox.channel.close()  # what the kernel does to the connection of a process that died
    deadline = time.monotonic() + 10
    while docker_client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"}) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not docker_client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
    assert volume not in {v.name for v in docker_client.volumes.list()}


def test_a_sandbox_ends_itself_at_its_deadline(docker_client, toy_image):
    run_id = f"pytest-deadline-{secrets.token_hex(6)}"
    spec = SandboxSpec(image=toy_image.tag, limits=dataclasses.replace(SMALL_LIMITS, wall_seconds=1),
                       labels={LABEL_RUN: run_id})
    sandbox = create_sandbox("docker", spec, client=docker_client)
    sandbox.start()
    sandbox._watchdog.cancel()
    assert sandbox.channel.request("set_deadline", at=time.time() + 2)["ok"]  # instead of 1 s + the grace
    time.sleep(5)
    assert not docker_client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
    sandbox.stop()


def test_cleanup_of_one_run_leaves_other_runs_alone(docker_sandbox, docker_client):
    from evaluator.sandbox.cleanup import cleanup

    sandbox = docker_sandbox()
    report = cleanup(client=docker_client, run_id=f"pytest-other-{secrets.token_hex(6)}")
    assert report.containers == [] and report.volumes == []
    assert sandbox.alive()


# -- copy-out ------------------------------------------------------------------------------------

def test_copy_out_refuses_symlinks_leaving_the_destination(docker_sandbox, tmp_path):
    sandbox = docker_sandbox()
    setup = ("echo fine > good.txt && mkdir -p sub && echo deeper > sub/inner.txt && "
             "ln -s /etc/passwd leak && ln -s ../../../../etc evil && ln -s good.txt ok-link && "
             "ln -s /tmp sub/tmp-link")
    assert sandbox.exec(setup).outcome == ExecOutcome.OK
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    dest = tmp_path / "nested" / "dest"
    copy = sandbox.copy_out(dest)
    copied = copy.copied

    assert "good.txt" in copied and "sub/inner.txt" in copied
    assert {s["name"]: s["reason"] for s in copy.skipped} == {
        "leak": "a symbolic link", "evil": "a symbolic link", "ok-link": "a symbolic link",
        "sub/tmp-link": "a symbolic link"}
    assert (dest / "good.txt").read_text() == "fine\n"
    assert not (dest / "leak").exists() and not (dest / "leak").is_symlink()
    assert not (dest / "evil").exists() and not (dest / "evil").is_symlink()
    assert not (dest / "sub" / "tmp-link").is_symlink()
    # nothing outside dest was written
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(outside_before + ["nested"])
    assert [p.name for p in (tmp_path / "nested").iterdir()] == ["dest"]
    # and nothing inside dest resolves outside it
    root = dest.resolve()
    for path in dest.rglob("*"):
        assert path.resolve().is_relative_to(root), (path, path.resolve())
        if path.is_file():
            assert b"root:" not in path.read_bytes(), path


# -- the episode records every attack as an outcome and carries on -------------------------------

def test_episode_records_attacks_as_outcomes_and_carries_on(tmp_path, toy_bundle, toy_image):
    from evaluator.agents.fixed import ScriptedActionsAgent
    from evaluator.runs import RunPlan, execute

    limits = toy_bundle.limits
    cap = limits.output_bytes
    attacks = [
        ({"exec": "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 80), timeout=3)\""},
         ExecOutcome.NONZERO_EXIT),
        ({"exec": "id -u"}, ExecOutcome.OK),
        ({"exec": "touch /etc/x"}, ExecOutcome.NONZERO_EXIT),
        ({"exec": FORK_BOMB, "timeout": 5}, ExecOutcome.PIDS_LIMIT),
        ({"exec": memory_hog(limits.memory_mb + 512), "timeout": 60}, ExecOutcome.MEMORY_KILLED),
        ({"exec": "sleep 3600", "timeout": 2}, ExecOutcome.TIMEOUT),
        ({"exec": f"head -c {10 * cap} /dev/zero | tr '\\0' x"}, ExecOutcome.OUTPUT_CAPPED),
        ({"tool": "train_and_evaluate", "args": {"config": {"model": "random_forest"}}}, ExecOutcome.OK),
    ]
    actions_file = tmp_path / "actions.yaml"
    actions_file.write_text(yaml.safe_dump({
        "schema_version": 1, "description": "every attack, then real work",
        "actions": [a for a, _ in attacks] + [{"submit": {"note": "after the attacks"}}]}))
    agent = ScriptedActionsAgent(actions_file)
    plan = RunPlan(bundle=toy_bundle, agent=agent, seeds=[0], backend="docker", root=tmp_path / "runs",
                   run_id=f"pytest-attacks-{secrets.token_hex(4)}")

    [result] = execute(plan, image=toy_image.tag, image_hash=toy_image.input_hash)

    assert result["status"] == "completed", result["error"]
    assert result["error"] is None
    assert result["stop_reason"] == "submitted"
    # the memory hog retires the container: it never serves another episode
    assert result["sandbox"] == {"backend": "docker", "isolated": True, "reused": False, "episodes_before": 0,
                                 "retired": "memory_killed"}
    expected = {}
    for _, outcome in attacks:
        expected[outcome] = expected.get(outcome, 0) + 1
    assert result["outcomes"] == expected
    assert expected[ExecOutcome.NONZERO_EXIT] == 2 and expected[ExecOutcome.OK] == 2

    episode_dir = plan.run_dir / "episodes" / plan.episode_id(0)
    events = [json.loads(line) for line in (episode_dir / "events.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) == len(attacks) + 1
    for number, (step, (action, outcome)) in enumerate(zip(steps, attacks), start=1):
        assert step["step"] == number
        if "exec" in action:
            assert step["action"] == "exec" and step["command"] == action["exec"]
        else:
            assert step["action"] == "tool" and step["tool"] == action["tool"]
            assert step["arguments"] == action["args"]
        assert step["result"]["outcome"] == outcome, (number, action, step["result"])
    assert steps[1]["result"]["stdout"].strip() == "1000"
    assert "Read-only file system" in steps[2]["result"]["stderr"]
    assert steps[5]["result"]["duration_s"] < 15
    assert steps[6]["result"]["stdout_bytes"] > cap
    tool_output = json.loads(steps[7]["result"]["stdout"])
    assert 0 < tool_output["cv_accuracy"] <= 1
    assert steps[-1]["action"] == "submit"
    assert [e["event"] for e in events].count("graded") == 1
    assert events[-1]["event"] == "episode_end"

    assert "metrics.json" in result["artefacts"] and "predictions.csv" in result["artefacts"]
    assert (episode_dir / "workspace" / "metrics.json").is_file()
    assert (episode_dir / "workspace" / "predictions.csv").is_file()
    assert result["output"]["valid"] is True, result["output"]
    assert result["grade"] is not None and result["grade"]["valid"] is True, result["grade_errors"]
    assert result["score"] is not None and result["grade_errors"] == []
    assert result["sandbox_events"] == [{"event": "quiesce", "outcome": "ok", "killed": True, "frozen": True}]
    assert json.loads((episode_dir / "result.json").read_text())["outcomes"] == expected
