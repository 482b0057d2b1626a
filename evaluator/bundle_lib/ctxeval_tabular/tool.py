"""The program of a tabular task's `train_and_evaluate` tool: JSON arguments on stdin, the
result as one JSON object on stdout. Exit 0 on success, 2 for invalid arguments or config,
1 for any other failure (the message on stderr, one line)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .experiment import train_and_evaluate
from .params import ConfigError
from .task import load_task

NAME = "train_and_evaluate"
EXAMPLE = '{"config": {"model": "random_forest"}}'


def env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return Path(value)


def fail(message: str, code: int) -> int:
    print(f"{NAME}: {message}", file=sys.stderr)
    return code


def main(tools_dir: Path, stdin_text: str | None = None) -> int:
    text = sys.stdin.read() if stdin_text is None else stdin_text
    if not text.strip():
        return fail(f"no arguments on stdin; expected a JSON object like {EXAMPLE}", 2)
    try:
        args = json.loads(text)
    except json.JSONDecodeError as exc:
        return fail(f"stdin is not valid JSON: {exc}", 2)
    if not isinstance(args, dict) or "config" not in args:
        return fail(f"arguments must be a JSON object like {EXAMPLE}", 2)
    extra = sorted(set(args) - {"config"})
    if extra:
        return fail(f"unknown argument(s) {', '.join(extra)}; the only argument is config", 2)
    try:
        result = train_and_evaluate(load_task(tools_dir), args["config"], env_path("CTXEVAL_DATA"),
                                    env_path("CTXEVAL_WORKSPACE"))
    except ConfigError as exc:
        return fail(f"invalid config: {exc}", 2)
    except Exception as exc:  # noqa: BLE001 - any other failure is reported, not raised
        return fail(f"{type(exc).__name__}: {exc}", 1)
    print(json.dumps(result))
    return 0


def run_config_file(tools_dir: Path, config_file: Path) -> int:
    """The starter's `python3 train.py`: the same work on the workspace's config.json."""
    try:
        config = json.loads(config_file.read_text())
        result = train_and_evaluate(load_task(tools_dir), config, env_path("CTXEVAL_DATA"),
                                    env_path("CTXEVAL_WORKSPACE"))
    except (OSError, json.JSONDecodeError, ConfigError) as exc:
        print(f"invalid {config_file.name}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":  # python3 -P -m ctxeval_tabular.tool TOOLS_DIR (the tool's command)
    if len(sys.argv) != 2:
        sys.exit(fail("usage: python3 -P -m ctxeval_tabular.tool TOOLS_DIR (arguments as JSON on stdin)", 2))
    sys.exit(main(Path(sys.argv[1])))
