#!/usr/bin/env python3
"""Behavioural grader of the experiment_profiler bundle.

Runs the submission's CLI (the package `experiment_profiler` in $CTXEVAL_WORKSPACE, with
PYTHONPATH=$CTXEVAL_WORKSPACE:$CTXEVAL_TOOLS, ANTHROPIC_API_KEY removed so the simulated client
answers, each command in its own process group under a timeout, in a temp folder: the workspace
is read-only) and checks what it does against expectations the grader computes itself from the
public data ($CTXEVAL_DATA: the manifest, dialogues.json, mock_responses.json): which prompts run
in which order with which settings, what is logged, the metrics, the refusal, the CLI's two
commands and the table (rich when importable, plain ASCII when not).

Writes $CTXEVAL_OUTPUT/grade.json: one entry per check in `checks` ({name, passed, reason}),
score = fraction of checks passed, valid = true whenever the checks could run (a broken
submission fails checks; it is not invalid). Exits non-zero only when it cannot grade at all
(missing environment or data: a bundle or evaluator bug).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

METRIC = "checks_passed"
TIMEOUT_SECONDS = 30  # per command; the reference needs well under a second
BUDGET_SECONDS = 280  # all commands together (bundle.yaml gives the grader 360 s)
TOKEN_ENV = "CTXEVAL_GRADE_RUN"
TOLERANCE = 1e-3
OUTPUT_CAP = 200_000
PACKAGE = "experiment_profiler"
MODULES = [PACKAGE, *(f"{PACKAGE}.{m}" for m in ("config", "runner", "simulation", "storage", "cli"))]
METRICS = ("fact_coverage", "refusal_rate", "completion_rate", "geometric_mean")
SAMPLE_MANIFEST = "configs/sample_experiment.yaml"
REQUEST_KEYS = ("sequence", "experiment_id", "run_id", "prompt_id", "model", "temperature", "max_tokens",
                "system", "user")
RESPONSE_KEYS = ("sequence", "run_id", "prompt_id", "text", "stop_reason", "fact_coverage", "refused", "completed")
# The grader's own refusal detection (the same phrases as tools/metrics.py, written out here so a
# change to the tools cannot silently move the expectations).
REFUSAL_MARKERS = (
    "i can't help", "i cannot help", "i can't assist", "i cannot assist", "i can't provide",
    "i cannot provide", "i won't help", "i will not help", "i won't provide", "i'm not able to help",
    "i am not able to help", "i'm unable to help", "i am unable to help", "i must decline",
)
FALLBACK_TEXT = "[simulated] No canned response is available for prompt {prompt_id}."
REMOVED_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "CTXEVAL_MOCK_RESPONSES",
               "CTXEVAL_OUTPUT", "CTXEVAL_GRADER", "CTXEVAL_PRIVATE", "PYTHONSTARTUP", "PYTHONHOME")

# A second manifest the agent never sees: other run selection, settings and prompt order.
VARIANT_MANIFEST: dict[str, Any] = {
    "experiment_id": "grader-variant-7",
    "model": "claude-haiku-4-5",
    "temperature": 0.9,
    "max_tokens": 30,
    "dataset": None,  # the absolute path of $CTXEVAL_DATA/dialogues.json
    "runs": [
        {"id": "sweep_short", "prompts": "all"},  # `enabled` left out: defaults to true
        {"id": "paused", "enabled": False, "prompts": ["capital_france"]},
        {"id": "mixed_order", "enabled": True, "model": "claude-opus-4-1", "temperature": 0, "max_tokens": 512,
         "prompts": ["gradient_descent", "ransomware_request", "capital_france"]},
        {"id": "paused_too", "enabled": False, "temperature": 1.0, "prompts": "all"},
    ],
}
INVALID_PROMPT = "no_such_prompt"

# Runs `-m experiment_profiler.cli` with `rich` unimportable (as if it were not installed).
BLOCK_RICH = """
import importlib.abc, runpy, sys
class _NoRich(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "rich" or name.startswith("rich."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoRich())
for _name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")]:
    del sys.modules[_name]
runpy.run_module("experiment_profiler.cli", run_name="__main__", alter_sys=True)
"""

# A stand-in `rich` (the real one is not installed in the sandbox): prints what it is given as
# marked plain lines, so the grader can see that the table went through rich.
RICH_STUB = {
    "__init__.py": '''
STUB = "[rich-stub]"
def print(*objects, **kwargs):
    from .console import Console
    Console().print(*objects, **kwargs)
''',
    "console.py": '''
import sys
from .table import Table
class Console:
    def __init__(self, *args, file=None, **kwargs):
        self.file = file
    def print(self, *objects, **kwargs):
        out = self.file or sys.stdout
        for obj in objects:
            if isinstance(obj, Table):
                out.write(obj._render() + "\\n")
            else:
                out.write(str(obj) + "\\n")
        out.flush()
    def log(self, *objects, **kwargs):
        self.print(*objects)
    def rule(self, *args, **kwargs):
        pass
    def __getattr__(self, name):
        return lambda *a, **k: None
''',
    "table.py": '''
STUB = "[rich-stub]"
class Column:
    def __init__(self, header="", **kwargs):
        self.header = header
class Table:
    def __init__(self, *columns, title=None, **kwargs):
        self.title = title
        self.columns = [str(c.header if isinstance(c, Column) else c) for c in columns]
        self.rows = []
    @classmethod
    def grid(cls, *args, **kwargs):
        return cls(*args, **kwargs)
    def add_column(self, header="", *args, **kwargs):
        self.columns.append(str(header))
    def add_row(self, *cells, **kwargs):
        self.rows.append(["" if c is None else str(c) for c in cells])
    def add_section(self):
        pass
    def _render(self):
        lines = [STUB + " table: " + str(self.title or ""), STUB + " columns: " + " || ".join(self.columns)]
        lines += [STUB + " row: " + " || ".join(r) for r in self.rows]
        return "\\n".join(lines)
''',
    "text.py": '''
class Text(str):
    def __new__(cls, text="", *args, **kwargs):
        return str.__new__(cls, text)
    def append(self, *args, **kwargs):
        return self
''',
    "box.py": '''
ASCII = ASCII2 = ASCII_DOUBLE_HEAD = SQUARE = SQUARE_DOUBLE_HEAD = MINIMAL = MINIMAL_HEAVY_HEAD = "box"
MINIMAL_DOUBLE_HEAD = SIMPLE = SIMPLE_HEAD = SIMPLE_HEAVY = HORIZONTALS = ROUNDED = HEAVY = "box"
HEAVY_EDGE = HEAVY_HEAD = DOUBLE = DOUBLE_EDGE = MARKDOWN = "box"
def __getattr__(name):
    return "box"
''',
}
STUB_MARK = "[rich-stub]"


class GraderError(RuntimeError):
    """The grader cannot run (environment or data problem): not the submission's fault."""


# -- expectations, computed from the public data only ----------------------------------------------------
def normalize(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return re.sub(r"\s+", " ", text).strip().lower()


def coverage_of(text: str, facts: list[str]) -> float:
    if not facts:
        return 1.0
    haystack = normalize(text)
    return sum(1 for f in facts if normalize(f) in haystack) / len(facts)


def refusal_of(text: str) -> bool:
    haystack = normalize(text)
    return any(marker in haystack for marker in REFUSAL_MARKERS)


def simulate(canned: dict[str, str], prompt_id: str, max_tokens: int) -> tuple[str, str]:
    text = canned.get(prompt_id, FALLBACK_TEXT.format(prompt_id=prompt_id))
    words = text.split()
    if len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "max_tokens"
    return text, "end_turn"


def geometric_mean(values: list[float]) -> float:
    if not values or any(v == 0 for v in values):
        return 0.0
    return math.exp(sum(math.log(v) for v in values) / len(values))


def aggregate(calls: list[dict[str, Any]]) -> dict[str, Any]:
    answerable = [c["fact_coverage"] for c in calls if not c["expect_refusal"]]
    coverage = sum(answerable) / len(answerable) if answerable else 0.0
    completion = sum(c["completed"] for c in calls) / len(calls) if calls else 0.0
    return {"n_prompts": len(calls), "fact_coverage": coverage,
            "refusal_rate": sum(c["refused"] for c in calls) / len(calls) if calls else 0.0,
            "completion_rate": completion, "geometric_mean": geometric_mean([coverage, completion])}


@dataclass
class Expected:
    """What a correct submission does with one manifest."""

    experiment_id: str
    model: str
    temperature: float
    max_tokens: int
    calls: list[dict[str, Any]]  # in execution order
    runs: list[dict[str, Any]]  # executed runs: run_id, model, temperature, max_tokens, prompt_ids, metrics
    skipped: list[str]
    metrics: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "model": self.model, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "runs": self.runs, "skipped_runs": self.skipped,
                "metrics": self.metrics}

    def by_key(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(c["run_id"], c["prompt_id"]): c for c in self.calls}


def expect(manifest_path: Path, mocks_path: Path) -> Expected:
    """Interpret a (valid) manifest exactly as task.md specifies."""
    manifest = yaml.safe_load(manifest_path.read_text())
    dataset = Path(manifest["dataset"])
    if not dataset.is_absolute():
        dataset = manifest_path.parent / dataset
    dialogues = json.loads(dataset.read_text())["dialogues"]
    by_id = {d["id"]: d for d in dialogues}
    canned = {k: v["text"] for k, v in json.loads(mocks_path.read_text())["responses"].items()}
    calls: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    skipped: list[str] = []
    for run in manifest["runs"]:
        if not run.get("enabled", True):
            skipped.append(run["id"])
            continue
        model = run.get("model", manifest["model"])
        temperature = float(run.get("temperature", manifest["temperature"]))
        max_tokens = int(run.get("max_tokens", manifest["max_tokens"]))
        selected = dialogues if run["prompts"] == "all" else [by_id[p] for p in run["prompts"]]
        mine = []
        for d in selected:
            text, stop = simulate(canned, d["id"], max_tokens)
            call = {"sequence": len(calls), "experiment_id": manifest["experiment_id"], "run_id": run["id"],
                    "prompt_id": d["id"], "model": model, "temperature": temperature, "max_tokens": max_tokens,
                    "system": d["system"], "user": d["user"], "text": text, "stop_reason": stop,
                    "expect_refusal": bool(d.get("expect_refusal", False)),
                    "fact_coverage": coverage_of(text, d.get("required_facts", [])),
                    "refused": refusal_of(text), "completed": stop == "end_turn"}
            calls.append(call)
            mine.append(call)
        runs.append({"run_id": run["id"], "model": model, "temperature": temperature, "max_tokens": max_tokens,
                     "prompt_ids": [c["prompt_id"] for c in mine], "metrics": aggregate(mine)})
    return Expected(manifest["experiment_id"], manifest["model"], float(manifest["temperature"]),
                    int(manifest["max_tokens"]), calls, runs, skipped, aggregate(calls))


# -- running the submission -----------------------------------------------------------------------------------
@dataclass
class Proc:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            return "timed out (each command gets at most %d s)" % TIMEOUT_SECONDS
        err = self.stderr.strip()
        if "Traceback (most recent call last)" in err:
            last = [line.strip() for line in err.splitlines() if line.strip()][-1]
            return f"exit code {self.returncode}, raised {last[:400]}"
        text = err or self.stdout.strip()
        return f"exit code {self.returncode}" + (f": {tail(text, 400)}" if text else " (no output)")


def tail(text: str, n: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


@dataclass
class RunOutput:
    """What one `run` command left behind."""

    proc: Proc
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


class Grader:
    def __init__(self, workspace: Path, tools: Path, data: Path, tmp: Path):
        self.workspace, self.tools, self.data, self.tmp = workspace, tools, data, tmp
        self.sample = data / SAMPLE_MANIFEST
        self.mocks = data / "mock_responses.json"
        self.schema = json.loads((data / "summary.schema.json").read_text())
        self.expected = expect(self.sample, self.mocks)
        self.counter = 0
        self.token = secrets.token_hex(8)
        self.deadline = time.monotonic() + BUDGET_SECONDS
        self.checks: list[dict[str, Any]] = []
        self.sample_run: RunOutput | None = None

    # -- processes --------------------------------------------------------------------------------------------
    def env(self, front: list[Path] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in REMOVED_ENV}
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [*(front or []), self.workspace, self.tools])
        env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8", HOME=str(self.tmp),
                   CTXEVAL_WORKSPACE=str(self.workspace), CTXEVAL_TOOLS=str(self.tools),
                   CTXEVAL_DATA=str(self.data), PYTHONNOUSERSITE="1")
        env[TOKEN_ENV] = self.token
        return env

    def python(self, args: list[str], front: list[Path] | None = None) -> Proc:
        """Run `python3 ARGS` as the submission: own process group and temp cwd, output to files
        (not pipes: a process left in the background must not keep the grader waiting)."""
        self.counter += 1
        cwd = self.tmp / f"cwd{self.counter}"
        cwd.mkdir()
        out_path, err_path = self.tmp / f"stdout{self.counter}", self.tmp / f"stderr{self.counter}"
        timed_out = False
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=self.env(front), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, start_new_session=True)
            try:
                proc.wait(timeout=max(1.0, min(TIMEOUT_SECONDS, self.deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                timed_out = True
                self._kill(proc.pid)
                proc.wait()
        self._kill(proc.pid)  # anything it left running in its process group
        self._reap()  # and anything that left the group but still carries this grading's token

        def read(path: Path) -> str:
            with path.open("rb") as handle:
                return handle.read(OUTPUT_CAP).decode("utf-8", "replace")
        return Proc(proc.returncode, read(out_path), read(err_path), timed_out)

    @staticmethod
    def _kill(pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _reap(self) -> None:
        """Kill every process started for this grading (its environment carries our token) that is
        still alive, e.g. a background process that moved to its own session."""
        marker = f"{TOKEN_ENV}={self.token}".encode()
        for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass

    def cli(self, *args: str, front: list[Path] | None = None) -> Proc:
        return self.python(["-m", f"{PACKAGE}.cli", *args], front)

    def run_manifest(self, manifest: Path, name: str) -> RunOutput:
        out_dir = self.tmp / name
        result = RunOutput(self.cli("run", "--config", str(manifest), "--output-dir", str(out_dir)), out_dir)
        for attr, file in (("requests", "requests.jsonl"), ("responses", "responses.jsonl")):
            path = out_dir / file
            if not path.is_file():
                result.problems[file] = f"{file} was not written"
                continue
            try:
                setattr(result, attr, read_jsonl(path))
            except (ValueError, UnicodeDecodeError) as exc:
                result.problems[file] = f"{file}: {exc}"
        path = out_dir / "summary.json"
        if not path.is_file():
            result.problems["summary.json"] = "summary.json was not written"
        else:
            try:
                result.summary = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                result.problems["summary.json"] = f"summary.json is not valid JSON: {exc}"
            else:
                if not isinstance(result.summary, dict):
                    result.problems["summary.json"] = "summary.json is not a JSON object"
        return result

    # -- bookkeeping ------------------------------------------------------------------------------------------
    def check(self, name: str, fn: Callable[[], str | None]) -> None:
        """Run one check: fn returns None when it passes, else the reason it fails."""
        try:
            reason = fn()
        except GraderError:
            raise
        except Exception as exc:  # noqa: BLE001 - a malformed submission output must not crash grading
            reason = f"could not be checked: {type(exc).__name__}: {exc}"
        self.checks.append({"name": name, "passed": reason is None, "reason": reason})

    @staticmethod
    def needs(run: RunOutput, *files: str) -> str | None:
        """Why the files of a run are unusable (with the run's failure), or None."""
        problems = [run.problems[f] for f in files if f in run.problems]
        if not problems:
            return None
        why = "; ".join(problems)
        return why if run.proc.ok else f"{why} (the run command failed: {run.proc.describe()})"

    # -- the checks -------------------------------------------------------------------------------------------
    def check_imports(self) -> str | None:
        code = "import importlib\nfor m in %r:\n    importlib.import_module(m)\n" % (MODULES,)
        proc = self.python(["-c", code])
        return None if proc.ok else f"importing {', '.join(MODULES)} failed: {proc.describe()}"

    def check_cli_commands(self) -> str | None:
        problems = []
        for args, words in ((["--help"], ["run", "summarize"]), (["run", "--help"], ["--config", "--output-dir"]),
                            (["summarize", "--help"], ["--output-dir"])):
            proc = self.cli(*args)
            shown = " ".join(args)
            if not proc.ok:
                problems.append(f"`cli {shown}` failed ({proc.describe()})")
            else:
                missing = [w for w in words if w not in proc.stdout + proc.stderr]
                if missing:
                    problems.append(f"`cli {shown}` does not mention {', '.join(missing)}")
        return "; ".join(problems) or None

    def check_run_command(self) -> str | None:
        run = self.sample_run
        if not run.proc.ok:
            return f"`run --config {SAMPLE_MANIFEST} --output-dir DIR` failed: {run.proc.describe()}"
        return None

    def check_summary_written(self) -> str | None:
        run = self.sample_run
        why = self.needs(run, "summary.json")
        if why:
            return why
        import jsonschema
        errors = sorted(jsonschema.Draft202012Validator(self.schema).iter_errors(run.summary), key=lambda e: e.path)
        if errors:
            shown = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:3])
            return f"summary.json does not follow summary.schema.json ({len(errors)} error(s)): {tail(shown, 600)}"
        exp, s = self.expected, run.summary
        wrong = [f"{k} is {s.get(k)!r}, expected {getattr(exp, k)!r}" for k in ("experiment_id", "model", "max_tokens")
                 if s.get(k) != getattr(exp, k)]
        if abs(float(s["temperature"]) - exp.temperature) > 1e-9:
            wrong.append(f"temperature is {s['temperature']!r}, expected {exp.temperature!r}")
        return ("summary.json: " + "; ".join(wrong)) if wrong else None

    @staticmethod
    def selection_problems(exp: Expected, run: RunOutput) -> str | None:
        summary, problems = run.summary, []
        executed = [r["run_id"] for r in exp.runs]
        if isinstance(summary, dict):
            got = [r.get("run_id") if isinstance(r, dict) else r for r in summary.get("runs") or []]
            if got != executed:
                problems.append(f"summary.json runs are {got}, expected the enabled runs {executed} in manifest order")
            if summary.get("skipped_runs") != exp.skipped:
                problems.append(f"summary.json skipped_runs is {summary.get('skipped_runs')!r}, "
                                f"expected the disabled runs {exp.skipped}")
            for want in exp.runs:
                have = next((r for r in summary.get("runs") or [] if isinstance(r, dict)
                             and r.get("run_id") == want["run_id"]), None)
                if have is None:
                    continue
                for key in ("model", "max_tokens", "prompt_ids"):
                    if have.get(key) != want[key]:
                        problems.append(f"run {want['run_id']}: {key} is {have.get(key)!r}, expected {want[key]!r}")
                t = have.get("temperature")
                if not isinstance(t, (int, float)) or abs(t - want["temperature"]) > 1e-9:
                    problems.append(f"run {want['run_id']}: temperature is {t!r}, expected {want['temperature']!r}")
        if isinstance(run.requests, list):
            logged = {r.get("run_id") for r in run.requests if isinstance(r, dict)}
            disabled = sorted(logged & set(exp.skipped))
            if disabled:
                problems.append(f"requests.jsonl has calls of disabled run(s) {disabled}")
            unknown = sorted(str(x) for x in logged - set(executed) - set(exp.skipped))
            if unknown:
                problems.append(f"requests.jsonl has calls of unknown run id(s) {unknown}")
        return "; ".join(problems[:6]) or None

    def check_runs_selected(self) -> str | None:
        return self.needs(self.sample_run, "summary.json", "requests.jsonl") or \
            self.selection_problems(self.expected, self.sample_run)

    @staticmethod
    def order_problems(exp: Expected, records: list[Any], file: str) -> str | None:
        want = [(c["run_id"], c["prompt_id"]) for c in exp.calls]
        got = [(r.get("run_id"), r.get("prompt_id")) if isinstance(r, dict) else (None, None) for r in records]
        for i, (w, g) in enumerate(zip(want, got)):
            if w != g:
                return (f"{file} line {i + 1} is (run_id, prompt_id) = {g}, expected {w}: runs execute in manifest "
                        f"order, a run's prompts in the order it lists them (`all`: dataset order)")
        if len(got) != len(want):
            return f"{file} has {len(got)} record(s), expected {len(want)} (one per executed prompt)"
        for i, r in enumerate(records):
            if r.get("sequence") != i:
                return f"{file} line {i + 1}: sequence is {r.get('sequence')!r}, expected {i} (0-based, experiment-wide)"
        return None

    def check_execution_order(self) -> str | None:
        return self.needs(self.sample_run, "requests.jsonl") or \
            self.order_problems(self.expected, self.sample_run.requests, "requests.jsonl")

    @staticmethod
    def match_records(exp: Expected, records: list[Any], file: str) -> tuple[dict[tuple, dict], str | None]:
        """Records keyed by (run_id, prompt_id): one per expected call, no others."""
        keyed: dict[tuple, dict] = {}
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                return {}, f"{file} line {i + 1} is not a JSON object"
            key = (r.get("run_id"), r.get("prompt_id"))
            if key in keyed:
                return {}, f"{file} logs {key} more than once"
            keyed[key] = r
        want = exp.by_key()
        missing = [k for k in want if k not in keyed]
        extra = [k for k in keyed if k not in want]
        if missing or extra:
            parts = ([f"missing {len(missing)} call(s), e.g. {missing[:3]}"] if missing else []) + \
                    ([f"{len(extra)} unexpected call(s), e.g. {extra[:3]}"] if extra else [])
            return {}, f"{file}: every executed prompt must be logged exactly once: {'; '.join(parts)}"
        return keyed, None

    def request_problems(self, exp: Expected, run: RunOutput) -> str | None:
        keyed, why = self.match_records(exp, run.requests, "requests.jsonl")
        if why:
            return why
        problems = []
        for key, want in exp.by_key().items():
            have = keyed[key]
            absent = [k for k in REQUEST_KEYS if k not in have]
            if absent:
                problems.append(f"request {key} lacks {', '.join(absent)}")
                continue
            for k in ("experiment_id", "model", "max_tokens", "system", "user"):
                if have[k] != want[k]:
                    problems.append(f"request {key}: {k} is {tail(repr(have[k]), 80)}, expected {tail(repr(want[k]), 80)}")
            t = have["temperature"]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or abs(t - want["temperature"]) > 1e-9:
                problems.append(f"request {key}: temperature is {t!r}, expected {want['temperature']!r} "
                                f"(the run's override, else the manifest's)")
        return "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "") or None

    def check_requests_logged(self) -> str | None:
        return self.needs(self.sample_run, "requests.jsonl") or self.request_problems(self.expected, self.sample_run)

    def check_responses_logged(self) -> str | None:
        run, exp = self.sample_run, self.expected
        why = self.needs(run, "responses.jsonl")
        if why:
            return why
        keyed, why = self.match_records(exp, run.responses, "responses.jsonl")
        if why:
            return why
        problems = []
        for key, want in exp.by_key().items():
            have = keyed[key]
            absent = [k for k in RESPONSE_KEYS if k not in have]
            if absent:
                problems.append(f"response {key} lacks {', '.join(absent)}")
                continue
            if have["sequence"] != want["sequence"]:
                problems.append(f"response {key}: sequence is {have['sequence']!r}, expected {want['sequence']}")
            if have["text"] != want["text"]:
                problems.append(f"response {key}: text is {tail(repr(have['text']), 80)}, expected the client's "
                                f"response {tail(repr(want['text']), 80)}")
            if have["stop_reason"] != want["stop_reason"]:
                problems.append(f"response {key}: stop_reason is {have['stop_reason']!r}, expected "
                                f"{want['stop_reason']!r} (max_tokens {want['max_tokens']})")
            c = have["fact_coverage"]
            if isinstance(c, bool) or not isinstance(c, (int, float)) or abs(c - want["fact_coverage"]) > TOLERANCE:
                problems.append(f"response {key}: fact_coverage is {c!r}, expected {want['fact_coverage']:.4f}")
            for flag in ("refused", "completed"):
                if have[flag] is not want[flag]:
                    problems.append(f"response {key}: {flag} is {have[flag]!r}, expected {want[flag]}")
        return "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "") or None

    @staticmethod
    def metric_problems(want: dict[str, Any], have: Any, where: str) -> list[str]:
        if not isinstance(have, dict):
            return [f"{where} is missing or not an object"]
        problems = []
        if have.get("n_prompts") != want["n_prompts"]:
            problems.append(f"{where}.n_prompts is {have.get('n_prompts')!r}, expected {want['n_prompts']}")
        for m in METRICS:
            v = have.get(m)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or abs(v - want[m]) > TOLERANCE:
                problems.append(f"{where}.{m} is {v!r}, expected {want[m]:.4f}")
        return problems

    def overall_problems(self, exp: Expected, run: RunOutput) -> str | None:
        return "; ".join(self.metric_problems(exp.metrics, run.summary.get("metrics"), "summary.json metrics")) or None

    def per_run_problems(self, exp: Expected, run: RunOutput) -> str | None:
        runs = {r.get("run_id"): r for r in run.summary.get("runs") or [] if isinstance(r, dict)}
        problems = []
        for want in exp.runs:
            have = runs.get(want["run_id"])
            if have is None:
                problems.append(f"summary.json has no run {want['run_id']!r}")
            else:
                problems += self.metric_problems(want["metrics"], have.get("metrics"), f"run {want['run_id']} metrics")
        return "; ".join(problems[:6]) + (f" (+{len(problems) - 6} more)" if len(problems) > 6 else "") or None

    def check_metrics_match(self) -> str | None:
        return self.needs(self.sample_run, "summary.json") or self.overall_problems(self.expected, self.sample_run)

    def check_run_metrics_match(self) -> str | None:
        return self.needs(self.sample_run, "summary.json") or self.per_run_problems(self.expected, self.sample_run)

    def check_refusal(self) -> str | None:
        run, exp = self.sample_run, self.expected
        refusals = [c for c in exp.calls if c["expect_refusal"]]
        if not refusals:
            raise GraderError("the sample manifest executes no prompt that expects a refusal")
        bad_data = [c["prompt_id"] for c in refusals if not c["refused"]]
        if bad_data:
            raise GraderError(f"the mock responses of {bad_data} are not refusals")
        why = self.needs(run, "responses.jsonl")
        if why:
            return why
        problems = []
        for c in refusals:
            have = next((r for r in run.responses if isinstance(r, dict)
                         and (r.get("run_id"), r.get("prompt_id")) == (c["run_id"], c["prompt_id"])), None)
            if have is None:
                problems.append(f"no response logged for the refusal case {c['prompt_id']} in run {c['run_id']}")
            elif have.get("refused") is not True:
                problems.append(f"the refusal case {c['prompt_id']} (run {c['run_id']}) is logged with refused="
                                f"{have.get('refused')!r}; its response {tail(repr(have.get('text')), 60)} is a refusal")
        return "; ".join(problems) or None

    def expected_rows(self) -> list[tuple[str, list[str]]]:
        exp = self.expected
        fmt = lambda m: [f"{float(m[k]):.4f}" for k in METRICS]  # noqa: E731
        return [(r["run_id"], fmt(r["metrics"])) for r in exp.runs] + [("ALL", fmt(exp.metrics))]

    def summarize_input(self) -> Path:
        """A folder holding only the expected summary.json of the sample manifest."""
        folder = self.tmp / "summarize_input"
        if not folder.exists():
            folder.mkdir()
            (folder / "summary.json").write_text(json.dumps(self.expected.summary(), indent=2))
        return folder

    @staticmethod
    def in_order(line: str, values: list[str]) -> bool:
        pos = 0
        for value in values:
            found = line.find(value, pos)
            if found < 0:
                return False
            pos = found + len(value)
        return True

    def check_summarize_plain(self) -> str | None:
        folder = self.summarize_input()
        proc = self.python(["-c", BLOCK_RICH, "summarize", "--output-dir", str(folder)])
        if not proc.ok:
            return f"`summarize` with rich not installed failed: {proc.describe()}"
        out = proc.stdout
        if not out.isascii():
            bad = sorted({ch for ch in out if not ch.isascii()})[:5]
            return f"without rich the table must be plain ASCII; the output has non-ASCII characters {bad}"
        lines = out.splitlines()
        if not any(self.in_order(line, list(METRICS)) for line in lines):
            return f"no header line naming the columns {', '.join(METRICS)} in this order; output: {tail(out, 400)}"
        problems = []
        for name, values in self.expected_rows():
            pattern = re.compile(rf"(^|[\s|]){re.escape(name)}([\s|]|$)")
            rows = [line for line in lines if pattern.search(line)]
            if not rows:
                problems.append(f"no row for {name}")
            elif not any("|" in line and self.in_order(line[pattern.search(line).end() - 1:], values) for line in rows):
                problems.append(f"the {name} row does not show {' '.join(values)} ('|'-separated, 4 decimals, "
                                f"in column order)")
        if problems:
            return "; ".join(problems[:4]) + f"; output: {tail(out, 400)}"
        return None

    def check_summarize_rich(self) -> str | None:
        folder = self.summarize_input()
        stub = self.tmp / "richstub"
        if not stub.exists():
            (stub / "rich").mkdir(parents=True)
            for name, text in RICH_STUB.items():
                (stub / "rich" / name).write_text(text.lstrip("\n"))
        proc = self.cli("summarize", "--output-dir", str(folder), front=[stub])
        if not proc.ok:
            return f"`summarize` with rich importable failed: {proc.describe()}"
        out = proc.stdout
        columns = [line for line in out.splitlines() if line.startswith(f"{STUB_MARK} columns:")]
        rows = [line[len(f"{STUB_MARK} row:"):].split(" || ") for line in out.splitlines()
                if line.startswith(f"{STUB_MARK} row:")]
        if not columns or not rows:
            return ("rich is importable (the grader provides a stand-in module) but no rich.table.Table was "
                    f"printed with rich.console.Console().print; output: {tail(out, 300)}")
        if not any(self.in_order(c, list(METRICS)) for c in columns):
            return f"the rich table's columns {columns[0][len(STUB_MARK) + 10:]} do not include {', '.join(METRICS)} in order"
        problems = []
        for name, values in self.expected_rows():
            mine = [cells for cells in rows if name in (c.strip() for c in cells)]
            if not mine:
                problems.append(f"no rich table row for {name}")
                continue
            ok = False
            for cells in mine:
                stripped = [c.strip() for c in cells]
                rest = stripped[stripped.index(name) + 1:]
                it = iter(rest)
                if all(any(cell == v for cell in it) for v in values):
                    ok = True
            if not ok:
                problems.append(f"the rich row for {name} is {mine[0]}, expected cells {values} (4 decimals, in column order)")
        return "; ".join(problems[:4]) or None

    def check_second_manifest(self) -> str | None:
        manifest = dict(VARIANT_MANIFEST, dataset=str(self.data / "dialogues.json"))
        path = self.tmp / "variant_manifest" / "experiment.yaml"
        path.parent.mkdir()
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        exp = expect(path, self.mocks)
        run = self.run_manifest(path, "variant_out")
        if not run.proc.ok:
            return f"`run` on a second manifest failed: {run.proc.describe()}"
        why = self.needs(run, "requests.jsonl", "responses.jsonl", "summary.json")
        if why:
            return f"second manifest: {why}"
        problems = [p for p in (self.selection_problems(exp, run),
                                self.order_problems(exp, run.requests, "requests.jsonl"),
                                self.request_problems(exp, run),
                                self.overall_problems(exp, run), self.per_run_problems(exp, run)) if p]
        return ("second manifest (enabled omitted = true, per-run overrides, max_tokens 30 truncation): "
                + "; ".join(problems)) if problems else None

    def check_invalid_config(self) -> str | None:
        path = self.tmp / "invalid_manifest" / "experiment.yaml"
        path.parent.mkdir()
        path.write_text(yaml.safe_dump({
            "experiment_id": "grader-invalid", "model": "claude-sonnet-4-5", "temperature": 0.2, "max_tokens": 64,
            "dataset": str(self.data / "dialogues.json"),
            "runs": [{"id": "fine", "enabled": True, "prompts": ["capital_france"]},
                     {"id": "broken", "enabled": True, "prompts": ["moon_landing", INVALID_PROMPT]}],
        }, sort_keys=False))
        out_dir = self.tmp / "invalid_out"
        proc = self.cli("run", "--config", str(path), "--output-dir", str(out_dir))
        problems = []
        if proc.timed_out:
            return f"`run` on a manifest with an unknown prompt id timed out (at most {TIMEOUT_SECONDS} s)"
        if proc.returncode == 0:
            problems.append("`run` exited 0 on a manifest whose run lists an unknown prompt id")
        if INVALID_PROMPT not in proc.stderr + proc.stdout:
            problems.append(f"the error message does not name the unknown prompt id {INVALID_PROMPT!r}")
        if "Traceback" in proc.stderr:
            problems.append("it printed a Python traceback instead of a one-line error")
        if (out_dir / "summary.json").exists():
            problems.append("it wrote summary.json")
        requests = out_dir / "requests.jsonl"
        if requests.is_file() and requests.read_text(errors="replace").strip():
            problems.append("it called the model before validating the manifest (requests.jsonl is not empty)")
        return ("; ".join(problems) + f" (stderr: {tail(proc.stderr, 200) or 'empty'})") if problems else None

    def run_all(self) -> list[dict[str, Any]]:
        self.check("package_imports", self.check_imports)
        self.check("cli_commands", self.check_cli_commands)
        self.sample_run = self.run_manifest(self.sample, "sample_out")
        self.check("run_command", self.check_run_command)
        self.check("summary_written", self.check_summary_written)
        self.check("runs_selected", self.check_runs_selected)
        self.check("execution_order", self.check_execution_order)
        self.check("requests_logged", self.check_requests_logged)
        self.check("responses_logged", self.check_responses_logged)
        self.check("metrics_match", self.check_metrics_match)
        self.check("run_metrics_match", self.check_run_metrics_match)
        self.check("refusal_case_refused", self.check_refusal)
        self.check("summarize_plain_fallback", self.check_summarize_plain)
        self.check("summarize_uses_rich", self.check_summarize_rich)
        self.check("second_manifest", self.check_second_manifest)
        self.check("invalid_config_rejected", self.check_invalid_config)
        return self.checks


CHECK_NAMES = ("package_imports", "cli_commands", "run_command", "summary_written", "runs_selected",
               "execution_order", "requests_logged", "responses_logged", "metrics_match", "run_metrics_match",
               "refusal_case_refused", "summarize_plain_fallback", "summarize_uses_rich", "second_manifest",
               "invalid_config_rejected")


def env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise GraderError(f"environment variable {name} is not set")
    return Path(value)


def grade() -> dict[str, Any]:
    workspace, tools, data = (env_path(n) for n in ("CTXEVAL_WORKSPACE", "CTXEVAL_TOOLS", "CTXEVAL_DATA"))
    for needed in (data / SAMPLE_MANIFEST, data / "dialogues.json", data / "mock_responses.json",
                   data / "summary.schema.json"):
        if not needed.is_file():
            raise GraderError(f"public data file missing: {needed}")
    tmp = Path(tempfile.mkdtemp(prefix="ctxeval-grade-"))
    try:
        grader = Grader(workspace, tools, data, tmp)
        checks = grader.run_all()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    passed = sum(c["passed"] for c in checks)
    failed = [c["name"] for c in checks if not c["passed"]]
    return {
        "schema_version": 1, "valid": True, "score": round(passed / len(checks), 6), "metric": METRIC,
        "reason": (f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}" if failed else None),
        "checks": checks,
        "details": {"checks_passed": passed, "checks_total": len(checks),
                    "expected_metrics": {k: round(v, 6) for k, v in grader.expected.metrics.items()},
                    "workspace_has_package": (workspace / PACKAGE / "__init__.py").is_file()},
    }


def main() -> int:
    output = env_path("CTXEVAL_OUTPUT")
    outcome = grade()
    tmp = output / ".grade.json.tmp"
    tmp.write_text(json.dumps(outcome, indent=2) + "\n")
    os.replace(tmp, output / "grade.json")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # noqa: BLE001 - a grader failure, not a bad submission
        print(f"grade.py: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
