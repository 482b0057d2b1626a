#!/usr/bin/env python3
"""Install and run a local Arize Phoenix server in its own virtual environment (stdlib only).

Phoenix pins dependencies (anthropic, openai, ...) that conflict with ctxeval's, so it never goes
into the project's .venv: it lives in <project>/.phoenix-venv.

    python3 scripts/phoenix_server.py install [--venv DIR]
    python3 scripts/phoenix_server.py serve [--host 127.0.0.1] [--port 6006] [--grpc-port N]
                                            [--workdir DIR] [--venv DIR] [--timeout SECONDS]

`serve` runs the server in the foreground, prints its URL once it answers, and stops it on
Ctrl-C / SIGTERM. Spans go to <url>/v1/traces (OTLP over HTTP); the UI is at <url>.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PHOENIX_VERSION = "20.26.1"  # newest arize-phoenix that installs and serves on Python 3.11 here
PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_VENV = PROJECT_DIR / ".phoenix-venv"
DEFAULT_WORKDIR = PROJECT_DIR / "runs" / "phoenix"
INSTALL_HINT = "python3 scripts/phoenix_server.py install"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def installed_version(venv: Path) -> str | None:
    """The arize-phoenix version installed in `venv`, or None when there is none."""
    python = venv_python(venv)
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('arize-phoenix'))"],
        capture_output=True, text=True)
    return probe.stdout.strip() if probe.returncode == 0 else None


def is_installed(venv: Path = DEFAULT_VENV) -> bool:
    return installed_version(venv) == PHOENIX_VERSION


def install(venv: Path = DEFAULT_VENV) -> None:
    if is_installed(venv):
        print(f"phoenix: arize-phoenix=={PHOENIX_VERSION} already installed in {venv}")
        return
    if not (3, 11) <= sys.version_info[:2] < (3, 15):
        sys.exit(f"phoenix: arize-phoenix {PHOENIX_VERSION} needs Python 3.11-3.14, "
                 f"this is {sys.version.split()[0]} ({sys.executable})")
    if not venv_python(venv).exists():
        print(f"phoenix: creating virtual environment {venv}")
        # sys._base_executable: a venv made from inside another venv would otherwise nest oddly.
        base = getattr(sys, "_base_executable", sys.executable)
        run([base, "-m", "venv", str(venv)])
        (venv / ".gitignore").write_text("*\n")  # never committed, like Python >= 3.13 does
    pip = [str(venv_python(venv)), "-m", "pip"]
    # The host's pip configuration (pip.conf, PIP_* variables) applies as it is: no index is named here.
    run(pip + ["install", "--quiet", "--upgrade", "pip"])
    print(f"phoenix: installing arize-phoenix=={PHOENIX_VERSION} into {venv} (a few minutes)")
    run(pip + ["install", "--quiet", f"arize-phoenix=={PHOENIX_VERSION}"])
    if not is_installed(venv):
        sys.exit(f"phoenix: install finished but {venv} reports arize-phoenix "
                 f"{installed_version(venv)!r}, not {PHOENIX_VERSION}")
    print(f"phoenix: arize-phoenix=={PHOENIX_VERSION} installed in {venv}")


def run(argv: list[str]) -> None:
    result = subprocess.run(argv)
    if result.returncode != 0:
        sys.exit(f"phoenix: command failed (exit {result.returncode}): {' '.join(argv)}")


def free_port(host: str = "") -> int:
    """A TCP port free on `host` ("" = every IPv4 interface, as Phoenix's gRPC server binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def server_command(venv: Path, host: str, port: int, grpc_port: int,
                   workdir: Path) -> tuple[list[str], dict[str, str]]:
    """argv and environment that run `phoenix serve` bound to host:port, data (SQLite) in workdir.

    The caller's other PHOENIX_* and OTEL_* variables are dropped so that none redirects the server."""
    env = dict(os.environ)
    for name in [k for k in env if k.startswith(("PHOENIX_", "OTEL_"))]:
        del env[name]  # a caller's Phoenix/OTel settings (a collector URL, a database) must not leak in
    env.update({
        "PHOENIX_HOST": host,
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),  # Phoenix binds it on [::] whatever the host; it can't be off
        "PHOENIX_WORKING_DIR": str(workdir),  # SQLite database phoenix.db goes here
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",  # no web fonts, pixels or WASM download
        "PHOENIX_LOG_MIGRATIONS": "false",  # else thousands of lines of SQL on a new database
        "PYTHONUNBUFFERED": "1",
    })
    return [str(venv / "bin" / "phoenix"), "serve"], env


def server_url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def answers(url: str) -> bool:
    """True once Phoenix's HTTP server answers its health check."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until_answers(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Return once `url` answers; RuntimeError if the process exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(url):
            return
        if process.poll() is not None:
            raise RuntimeError(f"phoenix server exited with code {process.returncode} before answering")
        time.sleep(0.25)
    raise RuntimeError(f"phoenix server did not answer at {url} within {timeout:.0f}s")


def serve(venv: Path, host: str, port: int, grpc_port: int, workdir: Path, timeout: float) -> int:
    if not is_installed(venv):
        hint = INSTALL_HINT if venv == DEFAULT_VENV else f"{INSTALL_HINT} --venv {venv}"
        sys.exit(f"phoenix: arize-phoenix=={PHOENIX_VERSION} is not installed in {venv}; run: {hint}")
    url = server_url(host, port)
    if answers(url):
        sys.exit(f"phoenix: something already answers at {url}; pick another --port")
    workdir.mkdir(parents=True, exist_ok=True)
    argv, env = server_command(venv, host, port, grpc_port, workdir)
    print(f"phoenix: starting on {url} (OTLP gRPC on port {grpc_port}, all interfaces), data in {workdir}",
          flush=True)
    process = subprocess.Popen(argv, env=env)

    def stop(signum, frame):
        process.terminate()
    signal.signal(signal.SIGTERM, stop)
    try:
        wait_until_answers(url, process, timeout)
        print(f"phoenix: ready at {url}  (OTLP/HTTP endpoint {url}/v1/traces)", flush=True)
        return process.wait()
    except RuntimeError as error:
        process.terminate()
        print(f"phoenix: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()
    finally:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    install_cmd = commands.add_parser("install", help=f"create the venv with arize-phoenix=={PHOENIX_VERSION}")
    install_cmd.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    serve_cmd = commands.add_parser("serve", help="run `phoenix serve` in the foreground")
    serve_cmd.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=6006)
    serve_cmd.add_argument("--grpc-port", type=int, default=0,
                           help="OTLP gRPC port (default: a free one, so servers can coexist)")
    serve_cmd.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                           help=f"Phoenix working dir with its SQLite database (default {DEFAULT_WORKDIR})")
    serve_cmd.add_argument("--timeout", type=float, default=120, help="seconds to wait for it to answer")
    args = parser.parse_args(argv)
    if args.command == "install":
        install(args.venv.resolve())
        return 0
    return serve(args.venv.resolve(), args.host, args.port, args.grpc_port or free_port(),
                 args.workdir.resolve(), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
