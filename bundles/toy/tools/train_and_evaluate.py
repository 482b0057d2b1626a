#!/usr/bin/env python3
"""Bundle tool `train_and_evaluate`.

Reads {"config": {...}} as JSON on stdin, scores the config by 5-fold cross-validated
accuracy on $CTXEVAL_DATA/train.csv, fits it on all of train, writes predictions.csv
and metrics.json into $CTXEVAL_WORKSPACE and prints the result as one JSON object.
Exit 0 on success, 2 for invalid arguments or config, 1 for any other failure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import toylib  # noqa: E402


def fail(message: str, code: int) -> int:
    print(f"train_and_evaluate: {message}", file=sys.stderr)
    return code


def main() -> int:
    text = sys.stdin.read()
    if not text.strip():
        return fail('no arguments on stdin; expected a JSON object like {"config": {"model": "random_forest"}}', 2)
    try:
        args = json.loads(text)
    except json.JSONDecodeError as exc:
        return fail(f"stdin is not valid JSON: {exc}", 2)
    if not isinstance(args, dict) or "config" not in args:
        return fail('arguments must be a JSON object like {"config": {"model": "random_forest", ...}}', 2)
    extra = sorted(set(args) - {"config"})
    if extra:
        return fail(f"unknown argument(s) {', '.join(extra)}; the only argument is config", 2)
    try:
        result = toylib.train_and_evaluate(
            args["config"], toylib.env_path("CTXEVAL_DATA"), toylib.env_path("CTXEVAL_WORKSPACE")
        )
    except toylib.ConfigError as exc:
        return fail(f"invalid config: {exc}", 2)
    except Exception as exc:  # noqa: BLE001 - any other failure is reported, not raised
        return fail(f"{type(exc).__name__}: {exc}", 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
