"""The run stage of a behavioural grader: the agent's code runs where the answers are not.

1. plan: the bundle's `grader.run.plan` command runs in the grading container (which runs no code
   of the agent's) and writes $CTXEVAL_OUTPUT/plan.json (evaluator/schemas/grader_plan.schema.json) and the
   commands' inputs under $CTXEVAL_OUTPUT/inputs/.
2. run: a submission sandbox (role "submission": the artefacts as a writable workspace, tools,
   public data, the inputs read-only; no grader, no private answers) runs each command through
   the usual exec path (timeout, output cap, group kill); every process left is killed between
   commands; then everything is killed and frozen, and $CTXEVAL_RUN_OUTPUT is copied out.
3. the results (evaluator/schemas/grader_run_results.schema.json) go back to the grading container,
   read-only under $CTXEVAL_RUN_RESULTS, where the grader command compares them.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..bundles.data import PreparedData
from ..bundles.manifest import Bundle
from ..jsonschemas import data_violations, project_schema, validate, violations
from ..sandbox import Sandbox, SandboxOptions, SandboxSpec, Scratch, create_sandbox
from ..sandbox.artefacts import ArtefactLimits, copy_folder, read_regular
from ..sandbox.base import ROLE_SUBMISSION
from .limits import OUTPUT_LIMITS, grader_limits
from .mounts import GRADER_OUTPUT, RUN_RESULTS, bundle_scratch

PLAN_FILE = "plan.json"
INPUTS_DIR = "inputs"
RESULTS_FILE = "results.json"
RUN_OUTPUT_DIR = "output"
RUN_INPUTS = Scratch(env="CTXEVAL_RUN_INPUTS", mount="/grading/inputs", writable=False, size_mb=64)
RUN_OUTPUT = Scratch(env="CTXEVAL_RUN_OUTPUT", mount="/grading/output", writable=True, size_mb=128)
RUN_OUTPUT_LIMITS = ArtefactLimits(max_bytes=100 * 1024 * 1024, max_file_bytes=20 * 1024 * 1024, max_files=5000)
DEFAULT_COMMAND_TIMEOUT = 30.0
DEFAULT_COMMAND_OUTPUT = 200_000
RUN_STAGE_SLACK_SECONDS = 60.0  # sandbox start, copy-outs and the plan command around the commands
RECORD_CHARS = 200_000


def run_stage(bundle: Bundle, grader: Sandbox, backend: str, image: str | None, artefacts: Path | None,
              prepared: PreparedData, labels: dict[str, str], scratch: Path, log: dict[str, Any],
              sandbox_options: SandboxOptions | None) -> str | None:
    """Plan, run and hand back the results; returns why grading cannot go on, or None."""
    assert bundle.grader_run is not None
    planned = grader.exec(bundle.grader_run.plan)
    log["plan"] = planned.to_record()
    if planned.exit_code != 0:
        return f"the grader's plan failed ({planned.outcome}, exit {planned.exit_code}): {planned.stderr.strip()[-1500:]}"
    plan_dir = scratch / "plan"
    copy = grader.export(GRADER_OUTPUT, plan_dir, OUTPUT_LIMITS)
    plan, problem = read_plan(plan_dir, copy.copied)
    if problem:
        return problem
    results_dir = scratch / "results"
    results = run_plan(bundle, plan, backend, image, artefacts, prepared, labels, plan_dir / INPUTS_DIR,
                       results_dir, sandbox_options)
    log["run"] = {"commands": [{k: c[k] for k in ("name", "outcome", "exit_code", "duration_s")}
                               for c in results["commands"]], "output": results["output"]}
    grader.upload(RUN_RESULTS, results_dir)
    return None


def read_plan(plan_dir: Path, copied: list[str]) -> tuple[dict[str, Any], str | None]:
    data = read_regular(plan_dir / PLAN_FILE, 4 * 1024 * 1024) if PLAN_FILE in copied else None
    if data is None:
        return {}, f"the grader's plan wrote no {PLAN_FILE}"
    try:
        plan = json.loads(data)
    except (ValueError, RecursionError) as exc:
        return {}, f"{PLAN_FILE} is not JSON: {exc}"
    problems = data_violations(plan, PLAN_FILE) or violations(plan, project_schema("grader_plan"), PLAN_FILE)
    names = [c["name"] for c in plan.get("commands", [])] if not problems else []
    if not problems and len(set(names)) != len(names):
        return {}, f"{PLAN_FILE}: command names must be unique"
    return plan, ("; ".join(str(p) for p in problems[:5]) or None)


def run_plan(bundle: Bundle, plan: dict[str, Any], backend: str, image: str | None, artefacts: Path | None,
             prepared: PreparedData, labels: dict[str, str], inputs: Path, results_dir: Path,
             sandbox_options: SandboxOptions | None) -> dict[str, Any]:
    """Run the plan's commands in a fresh submission sandbox; write and return results.json."""
    assert bundle.grader_run is not None
    total = bundle.grader_run.timeout_seconds
    spec = SandboxSpec(image=image, limits=grader_limits(bundle, total), labels=labels, role=ROLE_SUBMISSION,
                       tools_dir=bundle.tools_dir, data_dir=prepared.public, workspace_files=artefacts,
                       scratch=(replace(RUN_INPUTS, files=inputs if inputs.is_dir() else None), RUN_OUTPUT,
                                *bundle_scratch(bundle)))
    sandbox = create_sandbox(backend, spec, sandbox_options)
    records: list[dict[str, Any]] = []
    results_dir.mkdir(parents=True, exist_ok=True)
    try:
        sandbox.start()
        deadline = time.monotonic() + total
        for command in plan["commands"]:
            records.append(_run_command(sandbox, command, deadline - time.monotonic()))
            sandbox.kill_agent()
        sandbox.quiesce()  # nothing of the submission runs while its output is copied
        copy = sandbox.export(RUN_OUTPUT, results_dir / RUN_OUTPUT_DIR, RUN_OUTPUT_LIMITS)
    finally:
        sandbox.stop()
    if inputs.is_dir():
        copy_folder(inputs, results_dir / INPUTS_DIR, OUTPUT_LIMITS)
    results = {"schema_version": 1, "commands": records, "output": copy.record()}
    validate(results, "grader_run_results", results_dir / RESULTS_FILE)
    (results_dir / RESULTS_FILE).write_text(json.dumps(results, indent=1))
    return results


def _run_command(sandbox: Sandbox, command: dict[str, Any], left: float) -> dict[str, Any]:
    record: dict[str, Any] = {"name": command["name"], "ran": False, "exit_code": None, "outcome": "not_run",
                              "timed_out": False, "stdout": "", "stderr": "", "duration_s": 0.0}
    if left <= 1.0:
        record["stderr"] = "[ctxeval: the run stage's time was spent before this command started]"
        return record
    result = sandbox.exec(command["command"], env=command.get("env") or {},
                          timeout=min(float(command.get("timeout_seconds", DEFAULT_COMMAND_TIMEOUT)), left),
                          output_cap=int(command.get("output_bytes", DEFAULT_COMMAND_OUTPUT)))
    record.update(ran=True, exit_code=result.exit_code, outcome=result.outcome,
                  timed_out=result.outcome == "timeout", stdout=result.stdout[:RECORD_CHARS],
                  stderr=result.stderr[:RECORD_CHARS], stdout_bytes=result.stdout_bytes,
                  stderr_bytes=result.stderr_bytes, duration_s=round(result.duration_s, 4))
    return record
