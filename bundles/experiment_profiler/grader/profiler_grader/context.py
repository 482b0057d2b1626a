"""What the checks work from: the run stage's results, the expectations and the public data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import COMMAND_NAMES, OUTPUT_DIR, SAMPLE_MANIFEST, SAMPLE_RUN, SCHEMA_FILE, env_path, public_data
from .expectations import Expected, expect_file
from .results import OUTPUT_DIR as RESULTS_OUTPUT_DIR
from .results import CommandResult, RunOutput, load_results, load_run


@dataclass
class Context:
    data: Path  # $CTXEVAL_DATA
    workspace: Path  # $CTXEVAL_WORKSPACE: the artefacts, read-only; never run here
    output: Path  # $CTXEVAL_RUN_RESULTS/output: what the commands wrote under $CTXEVAL_RUN_OUTPUT
    results: dict[str, CommandResult]
    schema: dict[str, Any]  # summary.schema.json
    expected: Expected  # of the sample manifest
    sample_run: RunOutput

    def out_dir(self, name: str) -> Path:
        """The --output-dir of command `name`, as copied out of the submission sandbox."""
        return self.output / name / OUTPUT_DIR

    def run_of(self, name: str) -> RunOutput:
        return load_run(self.results[name], self.out_dir(name))


def load_context() -> Context:
    data = public_data()
    results_dir = env_path("CTXEVAL_RUN_RESULTS")
    results = load_results(results_dir, COMMAND_NAMES)
    output = results_dir / RESULTS_OUTPUT_DIR
    return Context(data=data, workspace=env_path("CTXEVAL_WORKSPACE"), output=output, results=results,
                   schema=json.loads((data / SCHEMA_FILE).read_text()),
                   expected=expect_file(data / SAMPLE_MANIFEST, data),
                   sample_run=load_run(results[SAMPLE_RUN], output / SAMPLE_RUN / OUTPUT_DIR))
