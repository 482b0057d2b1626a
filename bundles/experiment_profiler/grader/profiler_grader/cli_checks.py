"""Checks of the package and the CLI beyond the sample run: imports, help, the two `summarize`
tables, the second manifest and the invalid one. Each returns None when it passes, else why."""

from __future__ import annotations

import re
from pathlib import Path

from .common import (COMMAND_TIMEOUT_SECONDS, HELP_COMMANDS, IMPORTS, INVALID_CONFIG,
                     INVALID_PROMPT, METRICS, MODULES, SECOND_MANIFEST, SUMMARIZE_PLAIN, SUMMARIZE_RICH,
                     VARIANT_MANIFEST, tail, with_dataset)
from .context import Context
from .expectations import expect
from .run_checks import needs, order_problems, overall_problems, per_run_problems, request_problems, \
    selection_problems
from .stubs import STUB_MARK

STUB_COLUMNS = f"{STUB_MARK} columns:"
STUB_ROW = f"{STUB_MARK} row:"


def check_imports(ctx: Context) -> str | None:
    proc = ctx.results[IMPORTS]
    return None if proc.ok else f"importing {', '.join(MODULES)} failed: {proc.describe()}"


def check_cli_commands(ctx: Context) -> str | None:
    problems = []
    for name, args, words in HELP_COMMANDS:
        proc = ctx.results[name]
        shown = " ".join(args)
        if not proc.ok:
            problems.append(f"`cli {shown}` failed ({proc.describe()})")
        else:
            missing = [w for w in words if w not in proc.stdout + proc.stderr]
            if missing:
                problems.append(f"`cli {shown}` does not mention {', '.join(missing)}")
    return "; ".join(problems) or None


def expected_rows(ctx: Context) -> list[tuple[str, list[str]]]:
    """(row name, the four metrics with 4 decimals) of every executed run and ALL."""
    def fmt(metrics: dict) -> list[str]:
        return [f"{float(metrics[k]):.4f}" for k in METRICS]
    exp = ctx.expected
    return [(r["run_id"], fmt(r["metrics"])) for r in exp.runs] + [("ALL", fmt(exp.metrics))]


def in_order(line: str, values: list[str]) -> bool:
    pos = 0
    for value in values:
        found = line.find(value, pos)
        if found < 0:
            return False
        pos = found + len(value)
    return True


def plain_row_problems(ctx: Context, lines: list[str]) -> list[str]:
    problems = []
    for name, values in expected_rows(ctx):
        pattern = re.compile(rf"(^|[\s|]){re.escape(name)}([\s|]|$)")
        rows = [line for line in lines if pattern.search(line)]
        if not rows:
            problems.append(f"no row for {name}")
        elif not any("|" in line and in_order(line[pattern.search(line).end() - 1:], values) for line in rows):
            problems.append(f"the {name} row does not show {' '.join(values)} ('|'-separated, 4 decimals, "
                            f"in column order)")
    return problems


def check_summarize_plain(ctx: Context) -> str | None:
    proc = ctx.results[SUMMARIZE_PLAIN]
    if not proc.ok:
        return f"`summarize` with rich not installed failed: {proc.describe()}"
    out = proc.stdout
    if not out.isascii():
        bad = sorted({ch for ch in out if not ch.isascii()})[:5]
        return f"without rich the table must be plain ASCII; the output has non-ASCII characters {bad}"
    lines = out.splitlines()
    if not any(in_order(line, list(METRICS)) for line in lines):
        return f"no header line naming the columns {', '.join(METRICS)} in this order; output: {tail(out, 400)}"
    problems = plain_row_problems(ctx, lines)
    if problems:
        return "; ".join(problems[:4]) + f"; output: {tail(out, 400)}"
    return None


def cells_in_order(cells: list[str], name: str, values: list[str]) -> bool:
    """Whether the cells after `name` include the values, in order (other cells may come between)."""
    stripped = [c.strip() for c in cells]
    rest = iter(stripped[stripped.index(name) + 1:])
    return all(any(cell == v for cell in rest) for v in values)


def rich_row_problems(ctx: Context, rows: list[list[str]]) -> list[str]:
    problems = []
    for name, values in expected_rows(ctx):
        mine = [cells for cells in rows if name in (c.strip() for c in cells)]
        if not mine:
            problems.append(f"no rich table row for {name}")
            continue
        if not any(cells_in_order(cells, name, values) for cells in mine):
            problems.append(f"the rich row for {name} is {mine[0]}, expected cells {values} "
                            f"(4 decimals, in column order)")
    return problems


def check_summarize_rich(ctx: Context) -> str | None:
    proc = ctx.results[SUMMARIZE_RICH]
    if not proc.ok:
        return f"`summarize` with rich importable failed: {proc.describe()}"
    out = proc.stdout
    columns = [line for line in out.splitlines() if line.startswith(STUB_COLUMNS)]
    rows = [line[len(STUB_ROW):].split(" || ") for line in out.splitlines() if line.startswith(STUB_ROW)]
    if not columns or not rows:
        return ("rich is importable (the grader provides a stand-in module) but no rich.table.Table was "
                f"printed with rich.console.Console().print; output: {tail(out, 300)}")
    if not any(in_order(c, list(METRICS)) for c in columns):
        shown = columns[0][len(STUB_COLUMNS):].strip()
        return f"the rich table's columns {shown} do not include {', '.join(METRICS)} in order"
    return "; ".join(rich_row_problems(ctx, rows)[:4]) or None


def check_second_manifest(ctx: Context) -> str | None:
    exp = expect(with_dataset(VARIANT_MANIFEST, ctx.data), ctx.data, ctx.data)
    run = ctx.run_of(SECOND_MANIFEST)
    if not run.proc.ok:
        return f"`run` on a second manifest failed: {run.proc.describe()}"
    why = needs(run, "requests.jsonl", "responses.jsonl", "summary.json")
    if why:
        return f"second manifest: {why}"
    problems = [p for p in (selection_problems(exp, run), order_problems(exp, run.requests, "requests.jsonl"),
                            request_problems(exp, run), overall_problems(exp, run), per_run_problems(exp, run)) if p]
    return ("second manifest (enabled omitted = true, per-run overrides, max_tokens 30 truncation): "
            + "; ".join(problems)) if problems else None


def check_invalid_config(ctx: Context) -> str | None:
    proc = ctx.results[INVALID_CONFIG]
    out_dir: Path = ctx.out_dir(INVALID_CONFIG)
    if proc.timed_out:
        return f"`run` on a manifest with an unknown prompt id timed out (at most {COMMAND_TIMEOUT_SECONDS} s)"
    if not proc.ran:
        return f"`run` on a manifest with an unknown prompt id was {proc.describe()}"
    problems = []
    if proc.exit_code == 0:
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

