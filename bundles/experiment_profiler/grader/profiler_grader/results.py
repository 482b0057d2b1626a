"""Reading what the run stage did: $CTXEVAL_RUN_RESULTS/results.json (one record per command,
evaluator/schemas/grader_run_results.schema.json, written by the evaluator) and output/ (the files the
commands wrote under $CTXEVAL_RUN_OUTPUT, copied out). The records are the evaluator's; their
stdout, stderr and the files are the submission's, so they are parsed defensively."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .common import COMMAND_OUTPUT_BYTES, COMMAND_TIMEOUT_SECONDS, GraderError, tail

RESULTS_FILE = "results.json"
OUTPUT_DIR = "output"
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class CommandResult:
    """One command of the plan as it ran in the submission sandbox."""

    name: str
    ran: bool
    exit_code: int | None
    outcome: str
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.ran and self.outcome == "ok" and self.exit_code == 0

    @property
    def timed_out(self) -> bool:
        return self.outcome == "timeout"

    def describe(self) -> str:
        if not self.ran:
            return "not run: the run stage's time was spent before it started"
        if self.timed_out:
            return "timed out (each command gets at most %d s)" % COMMAND_TIMEOUT_SECONDS
        if self.outcome == "output_capped":
            return f"stopped: it printed more than {COMMAND_OUTPUT_BYTES} bytes (stdout and stderr together)"
        prefix = f"exit code {self.exit_code}" + ("" if self.outcome in ("ok", "nonzero_exit") else
                                                  f" ({self.outcome})")
        err = self.stderr.strip()
        if TRACEBACK in err:
            last = [line.strip() for line in err.splitlines() if line.strip()][-1]
            return f"{prefix}, raised {last[:400]}"
        text = err or self.stdout.strip()
        return prefix + (f": {tail(text, 400)}" if text else " (no output)")


def load_results(results_dir: Path, names: Iterable[str]) -> dict[str, CommandResult]:
    """The result of every planned command, by name. GraderError when the file is unusable or
    lacks a command: then the evaluator or the plan is at fault, not the submission."""
    path = results_dir / RESULTS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        records = {r["name"]: r for r in raw["commands"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GraderError(f"cannot read the run stage's {path}: {type(exc).__name__}: {exc}") from None
    missing = [n for n in names if n not in records]
    if missing:
        raise GraderError(f"the run stage has no result for the planned command(s) {', '.join(missing)}")
    return {name: command_result(records[name]) for name in names}


def command_result(record: dict[str, Any]) -> CommandResult:
    exit_code = record.get("exit_code")
    return CommandResult(name=str(record["name"]), ran=record.get("ran") is True,
                         exit_code=exit_code if isinstance(exit_code, int) else None,
                         outcome=str(record.get("outcome", "")), stdout=str(record.get("stdout", "")),
                         stderr=str(record.get("stderr", "")))


@dataclass
class RunOutput:
    """What one `run` command left behind."""

    proc: CommandResult
    out_dir: Path
    requests: list[Any] | None = None
    responses: list[Any] | None = None
    summary: Any = None
    problems: dict[str, str] = field(default_factory=dict)  # file -> why it is unusable


def read_jsonl(path: Path) -> list[Any]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {number} is not JSON ({exc})") from None
    return records


def load_run(proc: CommandResult, out_dir: Path) -> RunOutput:
    """The logs and the summary a `run` command wrote into out_dir (copied out of the sandbox)."""
    result = RunOutput(proc, out_dir)
    for attr, file in (("requests", "requests.jsonl"), ("responses", "responses.jsonl")):
        path = out_dir / file
        if not path.is_file():
            result.problems[file] = f"{file} was not written"
            continue
        try:
            setattr(result, attr, read_jsonl(path))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            result.problems[file] = f"{file}: {exc}"
    path = out_dir / "summary.json"
    if not path.is_file():
        result.problems["summary.json"] = "summary.json was not written"
        return result
    try:
        result.summary = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        result.problems["summary.json"] = f"summary.json is not valid JSON: {exc}"
    else:
        if not isinstance(result.summary, dict):
            result.problems["summary.json"] = "summary.json is not a JSON object"
    return result
