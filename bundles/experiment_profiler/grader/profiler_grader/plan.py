"""The plan stage: which commands the submission sandbox runs, and the input files they need.

Runs in the grading container, where no code of the agent's runs. Writes $CTXEVAL_OUTPUT/plan.json
(evaluator/schemas/grader_plan.schema.json) and $CTXEVAL_OUTPUT/inputs/ (visible to the submission, read-only,
as $CTXEVAL_RUN_INPUTS): the grader's manifests without their dataset, the expected summary.json the
`summarize` commands read, the runner that blocks `rich` and the stand-in `rich` package.

Every command runs in a fresh folder under $TMPDIR, with PYTHONPATH=$CTXEVAL_WORKSPACE:$CTXEVAL_TOOLS
(the stand-in rich first for the rich check), no ANTHROPIC_* variable (the simulated client answers),
and writes under $CTXEVAL_RUN_OUTPUT/<command>/. Paths of the run stage come from its environment
only: they differ between the Docker and the local backend.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import ctxeval_grading as grading
import yaml

from .common import (COMMAND_OUTPUT_BYTES, COMMAND_TIMEOUT_SECONDS, DATASET_FILE, HELP_COMMANDS, IMPORTS,
                     INPUT_BLOCK_RICH, INPUT_MANIFESTS, INPUT_RICH_STUB, INPUT_SUMMARY, INVALID_CONFIG,
                     MANIFEST_FILE, MANIFESTS, MODULES, OUTPUT_DIR, PACKAGE, SAMPLE_MANIFEST, SAMPLE_RUN,
                     SECOND_MANIFEST, SETUP_FAILED_EXIT, SUMMARIZE_PLAIN, SUMMARIZE_RICH, env_path, public_data)
from .expectations import expect_file
from .stubs import BLOCK_RICH, RICH_STUB

PLAN_FILE = "plan.json"
INPUTS_DIR = "inputs"
PYTHON_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8", "PYTHONNOUSERSITE": "1"}
# Variables the submission must not see: no real API call, no other canned responses, no startup hooks.
UNSET = 'unset ${!ANTHROPIC_@} CTXEVAL_MOCK_RESPONSES PYTHONSTARTUP PYTHONHOME'
SUBMISSION_PATH = "$CTXEVAL_WORKSPACE:$CTXEVAL_TOOLS"
SETUP_FAILED = f'{{ echo "grader: could not prepare this command" >&2; exit {SETUP_FAILED_EXIT}; }}'
FRESH_CWD = f'work=$(mktemp -d) && cd "$work" || {SETUP_FAILED}'
IMPORT_CODE = f"import importlib\nfor m in {json.dumps(MODULES)}:\n    importlib.import_module(m)\n"


def run_output(name: str, *parts: str) -> str:
    """A double-quoted shell word: a path under $CTXEVAL_RUN_OUTPUT/<name>/ (names are plain words)."""
    return '"' + "/".join(("$CTXEVAL_RUN_OUTPUT", name, *parts)) + '"'


def run_input(relative: str) -> str:
    return f'"$CTXEVAL_RUN_INPUTS/{relative}"'


def shell(body: str, *, setup: str | None = None, front: str = "") -> str:
    """A bash script: clean environment, PYTHONPATH (`front` first), fresh cwd, the setup (a failure
    there is not the submission's), then `body` in place of the shell."""
    lines = [UNSET, f'export PYTHONPATH="{front}{SUBMISSION_PATH}"', FRESH_CWD]
    if setup:
        lines.append(f"{{ {setup}; }} || {SETUP_FAILED}")
    lines.append(f"exec {body}")
    return "\n".join(lines)


def cli(*words: str) -> str:
    """`python3 -m experiment_profiler.cli WORDS` (words are shell words: quote literals)."""
    return " ".join(("python3", "-m", f"{PACKAGE}.cli", *words))


def fill_manifest(name: str) -> str:
    """Setup writing $CTXEVAL_RUN_OUTPUT/<name>/experiment.yaml: the input manifest plus its dataset,
    $CTXEVAL_DATA/dialogues.json as a single-quoted YAML string."""
    return (f"mkdir -p {run_output(name)} && q=\"'\" && d=${{CTXEVAL_DATA//$q/$q$q}} && "
            f"{{ cat {run_input(f'{INPUT_MANIFESTS}/{name}.yaml')} && "
            f"printf \"dataset: '%s/{DATASET_FILE}'\\n\" \"$d\"; }} > {run_output(name, MANIFEST_FILE)}")


def copy_summary(name: str) -> str:
    """Setup giving `summarize` a writable folder of its own holding the expected summary.json."""
    return (f"mkdir -p {run_output(name, OUTPUT_DIR)} && "
            f"cat {run_input(INPUT_SUMMARY)} > {run_output(name, OUTPUT_DIR, 'summary.json')}")


def run_manifest(name: str, manifest: str) -> str:
    return cli("run", "--config", manifest, "--output-dir", run_output(name, OUTPUT_DIR))


def commands() -> list[tuple[str, str]]:
    """(name, bash script) of every command, in the order they run."""
    planned = [(IMPORTS, shell(f"python3 -c {shlex.quote(IMPORT_CODE)}"))]
    planned += [(name, shell(cli(*map(shlex.quote, args)))) for name, args, _ in HELP_COMMANDS]
    planned.append((SAMPLE_RUN, shell(run_manifest(SAMPLE_RUN, f'"$CTXEVAL_DATA/{SAMPLE_MANIFEST}"'))))
    summarize = ("summarize", "--output-dir")
    planned.append((SUMMARIZE_PLAIN, shell(
        f'python3 -c "$code" {" ".join(summarize)} {run_output(SUMMARIZE_PLAIN, OUTPUT_DIR)}',
        setup=f"{copy_summary(SUMMARIZE_PLAIN)} && code=$(cat {run_input(INPUT_BLOCK_RICH)})")))
    planned.append((SUMMARIZE_RICH, shell(cli(*summarize, run_output(SUMMARIZE_RICH, OUTPUT_DIR)),
                                          setup=copy_summary(SUMMARIZE_RICH),
                                          front=f"$CTXEVAL_RUN_INPUTS/{INPUT_RICH_STUB}:")))
    for name in (SECOND_MANIFEST, INVALID_CONFIG):
        planned.append((name, shell(run_manifest(name, run_output(name, MANIFEST_FILE)), setup=fill_manifest(name))))
    return planned


def plan_entry(name: str, command: str) -> dict[str, Any]:
    return {"name": name, "command": command, "env": dict(PYTHON_ENV), "timeout_seconds": COMMAND_TIMEOUT_SECONDS,
            "output_bytes": COMMAND_OUTPUT_BYTES}


def write_inputs(inputs: Path, data: Path) -> None:
    """Everything the commands read besides the workspace, the tools and the public data."""
    for name, manifest in MANIFESTS.items():
        write_text(inputs / INPUT_MANIFESTS / f"{name}.yaml", yaml.safe_dump(manifest, sort_keys=False))
    summary = expect_file(data / SAMPLE_MANIFEST, data).summary()
    write_text(inputs / INPUT_SUMMARY, json.dumps(summary, indent=2))
    for name, text in RICH_STUB.items():
        write_text(inputs / INPUT_RICH_STUB / "rich" / name, text.lstrip("\n"))
    write_text(inputs / INPUT_BLOCK_RICH, BLOCK_RICH)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main() -> int:
    output, data = env_path("CTXEVAL_OUTPUT"), public_data()
    inputs = output / INPUTS_DIR
    shutil.rmtree(inputs, ignore_errors=True)
    write_inputs(inputs, data)
    plan = {"schema_version": 1, "commands": [plan_entry(name, command) for name, command in commands()]}
    grading.write_output(PLAN_FILE, plan)
    return 0
