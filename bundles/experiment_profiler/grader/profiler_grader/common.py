"""What the plan and the check stages share: names, limits, the grader's own manifests, the layout
of the inputs and outputs of the commands run in the submission sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# ctxeval's grading helper (grade.py puts it on sys.path); the other modules import these two from here
from ctxeval_grading import GraderError, env_path  # noqa: F401

METRIC = "checks_passed"
PACKAGE = "experiment_profiler"
MODULES = [PACKAGE, *(f"{PACKAGE}.{m}" for m in ("config", "runner", "simulation", "storage", "cli"))]
METRICS = ("fact_coverage", "refusal_rate", "completion_rate", "geometric_mean")
TOLERANCE = 1e-3
SAMPLE_MANIFEST = "configs/sample_experiment.yaml"
DATASET_FILE = "dialogues.json"
MOCKS_FILE = "mock_responses.json"
SCHEMA_FILE = "summary.schema.json"
DATA_FILES = (SAMPLE_MANIFEST, DATASET_FILE, MOCKS_FILE, SCHEMA_FILE)

COMMAND_TIMEOUT_SECONDS = 30  # per command; the reference needs well under a second
COMMAND_OUTPUT_BYTES = 200_000  # stdout + stderr of one command
SETUP_FAILED_EXIT = 97  # a command's own preparation (before the submission runs) failed

# The commands of the plan, in the order they run; their names key their results.
IMPORTS = "package_imports"
HELP_COMMANDS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (  # name, CLI args, words shown
    ("cli_help", ("--help",), ("run", "summarize")),
    ("cli_run_help", ("run", "--help"), ("--config", "--output-dir")),
    ("cli_summarize_help", ("summarize", "--help"), ("--output-dir",)),
)
SAMPLE_RUN = "sample_run"
SUMMARIZE_PLAIN = "summarize_plain"
SUMMARIZE_RICH = "summarize_rich"
SECOND_MANIFEST = "second_manifest"
INVALID_CONFIG = "invalid_config"
COMMAND_NAMES = (IMPORTS, *(h[0] for h in HELP_COMMANDS), SAMPLE_RUN, SUMMARIZE_PLAIN, SUMMARIZE_RICH,
                 SECOND_MANIFEST, INVALID_CONFIG)

# Inputs: $CTXEVAL_OUTPUT/inputs/ in the plan stage, $CTXEVAL_RUN_INPUTS in the run stage.
INPUT_MANIFESTS = "manifests"  # <command>.yaml: a grader manifest without its `dataset`
INPUT_SUMMARY = "summarize/summary.json"  # the expected summary.json of the sample manifest
INPUT_RICH_STUB = "richstub"  # holds the stand-in package rich/
INPUT_BLOCK_RICH = "block_rich.py"
# Outputs: $CTXEVAL_RUN_OUTPUT/<command>/ in the run stage, $CTXEVAL_RUN_RESULTS/output/<command>/ after.
OUTPUT_DIR = "out"  # the --output-dir a command gives the CLI
MANIFEST_FILE = "experiment.yaml"  # the manifest a command ran, its dataset filled in

# A second manifest the agent never sees: other run selection, settings and prompt order. Its
# `dataset` is the absolute path of $CTXEVAL_DATA/dialogues.json, filled in where it runs.
VARIANT_MANIFEST: dict[str, Any] = {
    "experiment_id": "grader-variant-7",
    "model": "claude-haiku-4-5",
    "temperature": 0.9,
    "max_tokens": 30,
    "runs": [
        {"id": "sweep_short", "prompts": "all"},  # `enabled` left out: defaults to true
        {"id": "paused", "enabled": False, "prompts": ["capital_france"]},
        {"id": "mixed_order", "enabled": True, "model": "claude-opus-4-1", "temperature": 0, "max_tokens": 512,
         "prompts": ["gradient_descent", "ransomware_request", "capital_france"]},
        {"id": "paused_too", "enabled": False, "temperature": 1.0, "prompts": "all"},
    ],
}
INVALID_PROMPT = "no_such_prompt"
INVALID_MANIFEST: dict[str, Any] = {
    "experiment_id": "grader-invalid", "model": "claude-sonnet-4-5", "temperature": 0.2, "max_tokens": 64,
    "runs": [{"id": "fine", "enabled": True, "prompts": ["capital_france"]},
             {"id": "broken", "enabled": True, "prompts": ["moon_landing", INVALID_PROMPT]}],
}
MANIFESTS = {SECOND_MANIFEST: VARIANT_MANIFEST, INVALID_CONFIG: INVALID_MANIFEST}


def public_data() -> Path:
    """$CTXEVAL_DATA, with every file the grader reads."""
    data = env_path("CTXEVAL_DATA")
    for name in DATA_FILES:
        if not (data / name).is_file():
            raise GraderError(f"public data file missing: {data / name}")
    return data


def with_dataset(manifest: dict[str, Any], data: Path) -> dict[str, Any]:
    """A grader manifest as it runs: its dataset the absolute path of the public dialogues."""
    return {**manifest, "dataset": str(data / DATASET_FILE)}


def tail(text: str, n: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]
