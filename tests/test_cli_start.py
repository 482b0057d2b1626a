"""`ctxeval --help` and `ctxeval policies` start without the heavy libraries: no Docker SDK, pandas,
matplotlib, OpenTelemetry, model SDKs, rich's help renderer, or ctxeval's sandbox, run and image
layers (timed in benchmarks/cli_start.py)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("docker", "pandas", "numpy", "matplotlib", "sklearn", "opentelemetry", "openai", "anthropic",
         "phoenix", "tiktoken", "typer.rich_utils", "rich.markdown", "rich.traceback",
         "evaluator.sandbox", "evaluator.runs", "evaluator.images")  # ctxeval's own heavy layers

PROBE = """
import json, sys
from evaluator.cli import app
try:
    app(sys.argv[1:], prog_name="ctxeval")
except SystemExit:
    pass
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {h.split(".")[0] for h in HEAVY}
               and any(name == h or name.startswith(h + ".") for h in HEAVY))
print("\\nMODULES " + json.dumps(heavy))
"""


def loaded_heavy_modules(*argv: str) -> tuple[list[str], str]:
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    output, _, modules = proc.stdout.rpartition("\nMODULES ")
    return json.loads(modules), output


@pytest.mark.parametrize("argv", [("--help",), ("policies",), ("run", "--help")])
def test_the_cli_starts_without_heavy_libraries(argv):
    heavy, output = loaded_heavy_modules(*argv)
    assert heavy == [], f"ctxeval {' '.join(argv)} imported {heavy}"
    assert "Usage" in output or "sliding_window" in output, output[:500]


def test_the_probe_sees_a_heavy_import_when_there_is_one():
    """The positive control: a command that does load one of them is caught."""
    code = f"HEAVY = {HEAVY!r}\nimport numpy\n{PROBE}"
    proc = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=120)
    assert '"numpy"' in proc.stdout.rpartition("\nMODULES ")[2]
