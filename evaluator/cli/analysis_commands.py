"""`ctxeval compare`, `ctxeval report` and `ctxeval export`: statistics, plots and other formats of finished runs."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import console, fail, handles_errors, warn

RUNS_HELP = "run folders or run ids under the runs folder (CTXEVAL_RUNS_DIR, from the environment or .env, else runs/); results are pooled"


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _interval(record: dict[str, Any], digits: int = 4) -> str:
    text = _fmt(record["estimate"], digits)
    return text if record["low"] is None else f"{text} [{_fmt(record['low'], digits)}, {_fmt(record['high'], digits)}]"


KEY_FIELDS = ("bundle", "mode", "model")


def _probe_cell(block: dict[str, Any] | None) -> str:
    """An arm's pooled probe recall: correct/answered, recall [Wilson interval]."""
    if block is None:
        return "–"
    return f"{block['correct']}/{block['answered']} {_interval(block['overall'], 3)}"


def _probe_pair_cells(record: dict[str, Any] | None) -> list[str]:
    """A comparison's probe-recall difference (paired bootstrap) and p (Holm-adjusted)."""
    if record is None:
        return ["–", "–"]
    better = f" {record['better']}{'*' if record['significant'] else ''}" if record["better"] else ""
    return [f"{_interval(record['difference'], 3)} n={record['pairs']}",
            f"{_fmt(record['p'], 3)} ({_fmt(record['p_adjusted'], 3)}){better}"]


def _constant_fields(document: dict[str, Any]) -> dict[str, str]:
    """Arm-key fields shared by every arm: said once in the title instead of in every row."""
    keys = [a["arm"] for a in document["arms"]]
    return {f: keys[0][f] for f in KEY_FIELDS if len({k[f] for k in keys}) == 1}


def _arms_table(document: dict[str, Any], varying: list[str], where: str):
    from rich.table import Table
    arms = Table(title=f"arms{' of ' + where if where else ''} (95 % intervals: Wilson for success rates, "
                       f"bootstrap for means)", title_justify="left")
    probes = any("probe_recall" in a for a in document["arms"])  # a column only where arms had probes
    for header in (*varying, "policy", "n", "success", "score", "tokens", "cost USD", "calls", "errors",
                   *(["probe recall"] if probes else [])):
        arms.add_column(header, justify="right" if header in ("n", "calls", "errors") else "left")
    for a in document["arms"]:
        k = a["arm"]
        arms.add_row(*(k[f] for f in varying), k["policy"], str(a["n"]),
                     f"{a['successes']}/{a['n']} {_interval(a['success_rate'], 3)}", _interval(a["score"]),
                     _interval(a["total_tokens"], 5), _interval(a["cost_usd"], 3), _fmt(a["llm_calls"], 3),
                     str(a["errors"]), *([_probe_cell(a.get("probe_recall"))] if probes else []))
    return arms


def _pairs_table(document: dict[str, Any], varying: list[str], probes: bool):
    from rich.table import Table

    from ..analysis.compare import verdict
    pairs = Table(title=f"paired by seed, a − b; p-values adjusted with {document['correction']}",
                  title_justify="left")
    for header in (*varying, "a", "b", "pairs", "score a − b", "p score (adj)", "success a/b",
                   "p success (adj)", "better", *(["recall a − b", "p recall (adj)"] if probes else [])):
        pairs.add_column(header)
    for c in document["comparisons"]:
        pairs.add_row(*(c[f] for f in varying), c["policy_a"], c["policy_b"], str(c["pairs"]),
                      _interval(c["score_difference"]),
                      f"{_fmt(c['score_p'], 3)} ({_fmt(c['score_p_adjusted'], 3)})",
                      f"{c['successes_a']}/{c['successes_b']}",
                      f"{_fmt(c['success_p'], 3)} ({_fmt(c['success_p_adjusted'], 3)})", verdict(c),
                      *(_probe_pair_cells(c.get("probe_recall")) if probes else []))
    return pairs


def print_tables(document: dict[str, Any]) -> None:
    """The arms and the paired comparisons as rich tables on stdout (probe-recall columns only
    where the arms had probes)."""
    import sys
    from rich.console import Console

    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)
    shared = _constant_fields(document)
    varying = [f for f in KEY_FIELDS if f not in shared]
    console.print(_arms_table(document, varying, " · ".join(shared.values())), markup=False)
    if not document["comparisons"]:
        console.print("no paired comparisons: no two policies share a bundle, mode and model", markup=False)
        return
    probes = any("probe_recall" in c for c in document["comparisons"])
    console.print(_pairs_table(document, varying, probes), markup=False)
    console.print(f"significant: adjusted score p < {document['alpha']}"
                  + (f"; recall a − b: per-episode probe recall on n seeds where both answered probes, "
                     f"p recall names the higher-recall policy, * = adjusted p < {document['alpha']}"
                     if probes else ""), markup=False)


def _load_all(runs: list[str]):
    from ..analysis.loading import load_run
    return [load_run(run) for run in runs]


@handles_errors
def compare(runs: list[str] = typer.Argument(..., metavar="RUN", help=RUNS_HELP),
            out: Optional[Path] = typer.Option(None, "--out", help="write compare.json here (default: "
                                                                  "<run_dir>/compare.json for a single run)"),
            as_json: bool = typer.Option(False, "--json", help="print the JSON document instead of tables"),
            policy: Optional[list[str]] = typer.Option(None, "--policy", help="compare only these policies "
                                                       "(repeat; the Holm family is their comparisons)"),
            ) -> None:
    """Per-arm statistics and paired policy comparisons (by seed, Holm-corrected) of one or more runs."""
    import json
    import sys

    from ..analysis.compare import compare_runs, write_compare
    loaded = _load_all(runs)
    document = compare_runs(loaded, policy)
    target = out or (loaded[0].run_dir / "compare.json" if len(loaded) == 1 else None)
    if target is not None:
        write_compare(document, target)
    for warning in document["warnings"]:
        warn(warning)
    if as_json:
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        print_tables(document)
    sys.stdout.flush()  # the closing note goes to stderr: keep it after the tables
    console().print(f"wrote {target}" if target else "not written: several runs, name a file with --out",
                    highlight=False, markup=False)


@handles_errors
def report(runs: list[str] = typer.Argument(..., metavar="RUN", help=RUNS_HELP),
           out: Optional[Path] = typer.Option(None, "--out", help="output folder (default: <first run>/report/)"),
           ) -> None:
    """A self-contained HTML report (tables, run metadata, plots) and the plots as PNGs."""
    from ..analysis.plots import PLOTS
    from ..analysis.policy_plots import POLICY_PLOTS
    from ..analysis.report import write_report
    loaded = _load_all(runs)
    for run in loaded:
        for reason in run.invalid:
            warn(f"{run.run_id}: invalid result {reason}")
    path = write_report(loaded, out or loaded[0].run_dir / "report")
    plots = [f"{name}.png" for name in (*PLOTS, *POLICY_PLOTS) if (path.parent / f"{name}.png").is_file()]
    console().print(f"wrote {path} (plots: {', '.join(plots)})", highlight=False, markup=False)


EXPORT_FORMATS = ("inspect",)


@handles_errors
def export(run: str = typer.Argument(..., metavar="RUN", help="a run folder or a run id under the runs folder"),
           format: str = typer.Option("inspect", "--format", help="inspect: one Inspect AI eval log per arm, "
                                      "which inspect_ai.log reads and `inspect view` serves"),
           out: Optional[Path] = typer.Option(None, "--out", help="output folder (default: <run>/inspect/)"),
           ) -> None:
    """Write a finished run in another tool's format (Inspect AI's eval logs)."""
    from ..analysis.inspect_export import export_run
    from ..analysis.loading import resolve_run_dir
    if format not in EXPORT_FORMATS:
        fail(f"--format must be one of {', '.join(EXPORT_FORMATS)}, not {format!r}")
    run_dir = resolve_run_dir(run)
    for log in export_run(run_dir, out or run_dir / "inspect"):
        console().print(f"wrote {log.path} ({log.samples} samples: {log.arm})", highlight=False, markup=False)


COMMANDS = {"compare": compare, "report": report, "export": export}
