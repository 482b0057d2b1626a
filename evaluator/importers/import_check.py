"""Import the competition's functions on the host, in a child process, before a bundle is written.

A child process keeps the user's code (and whatever it does on import) out of ctxeval's process,
writes no bytecode into the checkout or the bundle (-B), and imports the code exactly as the bundle
will: through mlebench_files/ctxeval_mlebench.py, with the same placeholders for absent libraries.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import CtxevalError, Violation

FILES_DIR = Path(__file__).resolve().parent / "mlebench_files"
CHECK_SCRIPT = FILES_DIR / "check_import.py"
TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class FunctionCheck:
    """Import `spec` from `root`; a failure is reported against `file` (the module's file), with
    `key` the config.yaml key that names the function."""

    root: Path
    spec: str
    file: Path
    key: str
    params: tuple[str, ...] | None = None
    where: str = "the checkout"


def check_functions(checks: list[FunctionCheck], stubs: list[str]) -> list[tuple[FunctionCheck, Violation]]:
    """The checks that failed, each with its violation: the function does not import (or has the
    wrong parameters)."""
    if not checks:
        return []
    request = {"stubs": sorted(stubs), "functions": [
        {"root": str(c.root), "spec": c.spec, "params": list(c.params) if c.params is not None else None}
        for c in checks]}
    try:
        proc = subprocess.run([sys.executable, "-B", str(CHECK_SCRIPT), json.dumps(request)], capture_output=True,
                              text=True, timeout=TIMEOUT_SECONDS, cwd=str(checks[0].root))
    except subprocess.TimeoutExpired:
        raise CtxevalError(f"importing the competition's code took over {TIMEOUT_SECONDS} s") from None
    lines = proc.stdout.strip().splitlines()
    try:
        results = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
    except ValueError:
        results = None
    if not isinstance(results, list) or len(results) != len(checks):
        raise CtxevalError(f"importing the competition's code failed (exit {proc.returncode}):\n"
                           f"{proc.stderr.strip()[-2000:]}")
    return [(check, Violation(str(check.file), "$", f"cannot import {check.spec} (config.yaml {check.key}) "
                                                    f"from {check.where}: {result['error']}"))
            for check, result in zip(checks, results) if not result["ok"]]
