"""Command line: run an experiment manifest, or summarize a finished run as a table.

    python -m experiment_profiler.cli run --config CONFIG.yaml --output-dir OUT
    python -m experiment_profiler.cli summarize --output-dir OUT

Exit status: 0 on success, 2 for an invalid manifest/dataset or a missing summary, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from anthropic_client import ClientError
from dataset import DatasetError

from .config import ConfigError
from .runner import METRIC_NAMES, run_experiment
from .storage import load_summary

HEADERS = ("run", "prompts", *METRIC_NAMES)
ALL_ROW = "ALL"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="experiment_profiler",
                                     description="Profile Claude fine-tuning experiments.")
    commands = parser.add_subparsers(dest="command", metavar="{run,summarize}", required=True)
    run = commands.add_parser("run", help="execute the enabled runs of an experiment manifest")
    run.add_argument("--config", required=True, help="the experiment manifest (YAML)")
    run.add_argument("--output-dir", required=True, help="folder for requests.jsonl, responses.jsonl, summary.json")
    summarize = commands.add_parser("summarize", help="print the metrics table of a finished run")
    summarize.add_argument("--output-dir", required=True, help="the folder `run` wrote")
    return parser


def table_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per executed run, then the ALL row; metrics with 4 decimals."""
    def row(name: str, values: dict[str, Any]) -> list[str]:
        return [name, str(values.get("n_prompts", "")), *(f"{float(values[m]):.4f}" for m in METRIC_NAMES)]
    return [row(r["run_id"], r["metrics"]) for r in summary.get("runs", [])] + [row(ALL_ROW, summary["metrics"])]


def title_of(summary: dict[str, Any]) -> str:
    return f"Experiment {summary.get('experiment_id', '?')} (model {summary.get('model', '?')})"


def render_ascii(title: str, headers: tuple[str, ...], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: list[str] | tuple[str, ...]) -> str:
        parts = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(parts) + " |"

    return "\n".join([title, rule, line(headers), rule, *(line(r) for r in rows[:-1]), rule,
                      line(rows[-1]), rule])


def render_rich(title: str, headers: tuple[str, ...], rows: list[list[str]]) -> bool:
    """Print with rich; False when rich is not installed."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return False
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=max(100, sum(len(h) for h in headers) + 30)).print(table)
    return True


def cmd_run(args: argparse.Namespace) -> int:
    summary = run_experiment(args.config, args.output_dir)
    m = summary["metrics"]
    print(f"ran {m['n_prompts']} prompt(s) in {len(summary['runs'])} run(s) "
          f"(skipped: {', '.join(summary['skipped_runs']) or 'none'}); wrote {args.output_dir}")
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    summary = load_summary(args.output_dir)
    rows = table_rows(summary)
    if not render_rich(title_of(summary), HEADERS, rows):
        print(render_ascii(title_of(summary), HEADERS, rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return cmd_run(args) if args.command == "run" else cmd_summarize(args)
    except (ConfigError, DatasetError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"error: model client: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
