"""The local backend (no Docker needed) and backend resolution.

The local backend is NOT isolated; what it does promise: bash in a temp workspace, safe args,
timeouts, output caps, rlimits, reset to the starter, safe copy-out, and saying it is not isolated.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import time
from pathlib import Path

import pytest

from evaluator.errors import CtxevalError
from evaluator.sandbox import SandboxSpec, create_sandbox, resolve_backend
from evaluator.sandbox.outcomes import ExecOutcome

try:
    from conftest import SMALL_LIMITS
except ImportError:  # tests/ as a package
    from tests.conftest import SMALL_LIMITS


@pytest.fixture
def local_sandbox(toy_bundle):
    started = []

    def make(limits=SMALL_LIMITS, **spec_fields):
        fields = dict(image=None, limits=limits, labels={}, tools_dir=toy_bundle.tools_dir)
        fields.update(spec_fields)
        sandbox = create_sandbox("local", SandboxSpec(**fields))
        sandbox.start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


def sha_listing(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_dead(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not pid_alive(pid)


def kill_if_alive(pid: int) -> None:
    """Tidy up a process this test itself started (by its pid), whatever the backend did."""
    if pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_exec_basics(local_sandbox):
    sandbox = local_sandbox()
    assert sandbox.backend == "local" and sandbox.isolated is False
    result = sandbox.exec("echo hello; echo oops >&2; exit 3")
    assert result.exit_code == 3
    assert result.outcome == ExecOutcome.NONZERO_EXIT
    assert result.stdout == "hello\n" and result.stderr == "oops\n"
    assert result.stdout_bytes == 6 and result.stderr_bytes == 5

    ok = sandbox.exec('pwd; echo "$CTXEVAL_WORKSPACE"; echo "$HOME"; cat')
    assert ok.outcome == ExecOutcome.OK and ok.exit_code == 0
    pwd, workspace, home = ok.stdout.splitlines()
    assert Path(pwd).resolve() == Path(workspace).resolve() == Path(sandbox.workspace_path).resolve()
    assert Path(home).resolve() == Path(sandbox.tmp).resolve()
    assert sandbox.exec("cat", stdin=b"piped in").stdout == "piped in"
    assert sandbox.exec('ls "$CTXEVAL_TOOLS"').stdout.split() == sorted(
        p.name for p in sandbox.spec.tools_dir.iterdir())


def test_exec_args_are_not_evaluated(local_sandbox, tmp_path):
    sandbox = local_sandbox()
    marker = tmp_path / "pwned"
    hostile = [f'a b  "c" \'d\' $(touch {marker}) `touch {marker}2` ; touch {marker}3 $HOME \\n',
               "", "-n", "--", "*"]
    result = sandbox.exec('printf "<%s>\\n" "$@"; echo "count=$#"', args=hostile)
    assert result.outcome == ExecOutcome.OK, result
    lines = result.stdout.splitlines()
    assert lines[:-1] == [f"<{a}>" for a in hostile]
    assert lines[-1] == f"count={len(hostile)}"
    assert list(tmp_path.iterdir()) == []


def test_write_and_read_file(local_sandbox):
    sandbox = local_sandbox()
    binary = bytes(range(256)) * 16 + os.urandom(1024)
    assert sandbox.write_file("sub/blob.bin", binary).outcome == ExecOutcome.OK
    assert (Path(sandbox.workspace_path) / "sub" / "blob.bin").read_bytes() == binary
    assert sandbox.read_file("sub/blob.bin") == binary
    assert sandbox.read_file("missing.txt") is None


def test_timeout_kills_the_command_and_its_children(local_sandbox):
    sandbox = local_sandbox()
    started = time.monotonic()
    result = sandbox.exec("sleep 3600 & echo $! > child.pid; sleep 3600", timeout=2)
    assert result.outcome == ExecOutcome.TIMEOUT, result
    assert time.monotonic() - started < 10
    child = int((Path(sandbox.workspace_path) / "child.pid").read_text())
    try:
        assert wait_dead(child), "the timed-out command's background child lives on"
    finally:
        kill_if_alive(child)

    stubborn = sandbox.exec("trap '' TERM; while :; do sleep 0.2; done", timeout=2)
    assert stubborn.outcome == ExecOutcome.TIMEOUT, stubborn
    assert stubborn.duration_s < 10


def test_output_flood_is_capped(local_sandbox):
    sandbox = local_sandbox()
    cap = SMALL_LIMITS.output_bytes
    started = time.monotonic()
    result = sandbox.exec("yes", timeout=30)
    assert result.outcome == ExecOutcome.OUTPUT_CAPPED, result.outcome
    assert time.monotonic() - started < 10
    assert result.stdout_bytes > cap
    assert len(result.raw_stdout) <= cap
    body, _, note = result.stdout.rpartition("\n[ctxeval: output capped")
    assert note and len(body.encode()) <= cap


def test_memory_limit(local_sandbox):
    sandbox = local_sandbox()
    too_much = SMALL_LIMITS.memory_mb * 2
    result = sandbox.exec(f"python3 -c 'x = b\"x\" * ({too_much} * 1024 * 1024); print(\"allocated\")'")
    assert "allocated" not in result.stdout
    assert result.exit_code != 0
    assert result.outcome in (ExecOutcome.MEMORY_KILLED, ExecOutcome.NONZERO_EXIT)
    small = sandbox.exec("python3 -c 'x = b\"x\" * (16 * 1024 * 1024); print(\"allocated\")'")
    assert small.outcome == ExecOutcome.OK and small.stdout.strip() == "allocated"


def test_wall_clock_budget(local_sandbox):
    sandbox = local_sandbox(dataclasses.replace(SMALL_LIMITS, wall_seconds=0.5))
    assert sandbox.exec("true").outcome == ExecOutcome.OK
    time.sleep(0.6)
    assert sandbox.exec("true").outcome == ExecOutcome.WALL_TIME


def test_describe_says_not_isolated(local_sandbox):
    info = local_sandbox().describe()
    assert info["backend"] == "local"
    assert info["isolated"] is False
    assert "NOT isolated" in info["warning"]


def test_reset_restores_starter_and_clears_tmp(local_sandbox, toy_bundle):
    sandbox = local_sandbox()
    workspace, tmp = Path(sandbox.workspace_path), Path(sandbox.tmp)
    sandbox.reset(toy_bundle.starter_dir)
    starter = sha_listing(toy_bundle.starter_dir)
    assert sha_listing(workspace) == starter

    dirty = ("echo changed > train.py; echo extra > extra.txt; echo h > .hidden; mkdir -p d/e && "
             "echo x > d/e/f && chmod 500 d/e; echo t > \"$TMPDIR/tmpfile\"; mkdir \"$TMPDIR/dir\"; "
             "ln -s /etc/passwd link")
    assert sandbox.exec(dirty).outcome == ExecOutcome.OK
    assert sha_listing(workspace) != starter

    sandbox.reset(toy_bundle.starter_dir)

    assert sha_listing(workspace) == starter
    assert sorted(p.name for p in workspace.iterdir()) == sorted(p.name for p in toy_bundle.starter_dir.iterdir())
    assert list(tmp.iterdir()) == []
    assert Path("/etc/passwd").exists()  # the link was removed, not followed


def test_reset_kills_background_processes_of_previous_execs(local_sandbox, toy_bundle):
    sandbox = local_sandbox()
    tmp = Path(sandbox.tmp)
    spawn = ("sleep 1000 >/dev/null 2>&1 </dev/null & echo $! > \"$TMPDIR/plain.pid\"; "
             "nohup sleep 1002 >/dev/null 2>&1 </dev/null & echo $! > \"$TMPDIR/nohup.pid\"; "
             "setsid sleep 1001 >/dev/null 2>&1 </dev/null & echo $! > \"$TMPDIR/setsid.pid\"; "
             "sleep 0.3")  # let setsid leave the exec's process group before the exec ends
    assert sandbox.exec(spawn).outcome == ExecOutcome.OK
    pids = {name: int((tmp / f"{name}.pid").read_text()) for name in ("plain", "nohup", "setsid")}
    try:
        # a plain `&` child shares the exec's process group, which is killed when the exec ends
        assert wait_dead(pids["plain"]), "a plain background process outlived its exec"
        assert wait_dead(pids["nohup"]), "a nohup background process outlived its exec"
        assert pid_alive(pids["setsid"]), "the setsid process should outlive its exec (else this proves nothing)"

        sandbox.reset(toy_bundle.starter_dir)

        assert wait_dead(pids["setsid"]), "reset left a process the agent started (setsid) running"
    finally:
        for pid in pids.values():
            kill_if_alive(pid)


def test_copy_out_refuses_symlinks_leaving_the_destination(local_sandbox, tmp_path):
    sandbox = local_sandbox()
    setup = ("echo fine > good.txt && mkdir -p sub && echo deeper > sub/inner.txt && "
             "ln -s /etc/passwd leak && ln -s ../../../../../../etc evil && ln -s good.txt ok-link")
    assert sandbox.exec(setup).outcome == ExecOutcome.OK
    dest = tmp_path / "nested" / "dest"
    copy = sandbox.copy_out(dest)
    copied = copy.copied

    assert "good.txt" in copied and "sub/inner.txt" in copied
    assert sorted(s["name"] for s in copy.skipped) == ["evil", "leak", "ok-link"]
    assert (dest / "good.txt").read_text() == "fine\n"
    assert not (dest / "leak").exists() and not (dest / "leak").is_symlink()
    assert not (dest / "evil").exists() and not (dest / "evil").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nested"]
    assert [p.name for p in (tmp_path / "nested").iterdir()] == ["dest"]
    root = dest.resolve()
    for path in dest.rglob("*"):
        assert path.resolve().is_relative_to(root), (path, path.resolve())
        if path.is_file():
            assert b"root:" not in path.read_bytes(), path


# -- backend resolution --------------------------------------------------------------------------

@pytest.mark.docker
def test_auto_picks_docker_when_an_engine_answers():
    warnings = []
    assert resolve_backend("auto", warn=warnings.append) == "docker"
    assert warnings == []
    assert resolve_backend("docker") == "docker"


def test_explicit_local_is_kept():
    warnings = []
    assert resolve_backend("local", warn=warnings.append) == "local"
    assert warnings == []


def test_unknown_backend_is_refused():
    with pytest.raises(CtxevalError, match="unknown sandbox backend"):
        resolve_backend("podman")


def test_docker_without_an_engine_is_an_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    with pytest.raises(CtxevalError, match="(?i)docker engine"):
        resolve_backend("docker")


def test_auto_without_an_engine_falls_back_to_local_and_warns(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    warnings = []
    assert resolve_backend("auto", warn=warnings.append) == "local"
    assert len(warnings) == 1
    assert "NOT isolated" in warnings[0]
