#!/usr/bin/env python3
"""Bundle tool `run_profiler`.

Reads {"config": "configs/sample_experiment.yaml"} as JSON on stdin (config: a manifest path
relative to $CTXEVAL_DATA; that one by default), runs the workspace's CLI

    python3 -m experiment_profiler.cli run --config $CTXEVAL_DATA/<config> --output-dir results

in $CTXEVAL_WORKSPACE (PYTHONPATH=$CTXEVAL_WORKSPACE:$CTXEVAL_TOOLS, ANTHROPIC_API_KEY removed,
exactly as the grader runs it) and prints one JSON object: the config, the output folder, the
files written and the summary.json the CLI wrote. Exit 0 on success, 2 for invalid arguments,
1 when the CLI fails (its exit status and the end of its stderr are reported on stderr).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

DEFAULT_CONFIG = "configs/sample_experiment.yaml"
OUTPUT_DIR = "results"
TIMEOUT_SECONDS = 60


def fail(message: str, code: int) -> int:
    print(f"run_profiler: {message}", file=sys.stderr)
    return code


def env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return Path(value)


def main() -> int:
    text = sys.stdin.read()
    try:
        args = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        return fail(f"stdin is not valid JSON: {exc}", 2)
    if not isinstance(args, dict):
        return fail('arguments must be a JSON object like {"config": "configs/sample_experiment.yaml"}', 2)
    extra = sorted(set(args) - {"config"})
    if extra:
        return fail(f"unknown argument(s) {', '.join(extra)}; the only argument is config", 2)
    config = args.get("config", DEFAULT_CONFIG)
    if not isinstance(config, str) or not config or PurePosixPath(config).is_absolute() \
            or ".." in PurePosixPath(config).parts:
        return fail(f"config must be a path relative to $CTXEVAL_DATA without '..', got {config!r}", 2)
    try:
        data, workspace, tools = (env_path(n) for n in ("CTXEVAL_DATA", "CTXEVAL_WORKSPACE", "CTXEVAL_TOOLS"))
    except RuntimeError as exc:
        return fail(str(exc), 1)
    manifest = data / config
    if not manifest.is_file():
        return fail(f"no manifest {config} in $CTXEVAL_DATA", 2)
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "CTXEVAL_MOCK_RESPONSES")}
    env.update(PYTHONPATH=f"{workspace}{os.pathsep}{tools}", PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "experiment_profiler.cli", "run", "--config", str(manifest),
               "--output-dir", OUTPUT_DIR]
    try:
        proc = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return fail(f"the CLI did not finish within {TIMEOUT_SECONDS} s", 1)
    if proc.returncode != 0:
        return fail(f"the CLI exited with status {proc.returncode}:\n{(proc.stderr or proc.stdout)[-3000:]}", 1)
    out = workspace / OUTPUT_DIR
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return fail(f"the CLI exited 0 but {OUTPUT_DIR}/summary.json is missing or not JSON: {exc}", 1)
    files = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    print(json.dumps({"config": config, "output_dir": OUTPUT_DIR, "files": files, "summary": summary,
                      "stdout": proc.stdout[-1000:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
