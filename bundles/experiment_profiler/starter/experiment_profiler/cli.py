"""Command line: run an experiment manifest, or summarize a finished run as a table.

    python -m experiment_profiler.cli run --config CONFIG.yaml --output-dir OUT
    python -m experiment_profiler.cli summarize --output-dir OUT
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .runner import METRIC_NAMES, run_experiment
from .storage import load_summary

HEADERS = ("run", "prompts", *METRIC_NAMES)


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


def render_table(summary: dict[str, Any]) -> None:
    """Print the metrics table: rich when it is importable, plain ASCII otherwise."""
    # TODO
    raise NotImplementedError("TODO: render_table")


def cmd_run(args: argparse.Namespace) -> int:
    run_experiment(args.config, args.output_dir)
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    render_table(load_summary(args.output_dir))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # TODO: turn an invalid manifest into a one-line error and a non-zero exit status (task.md).
    return cmd_run(args) if args.command == "run" else cmd_summarize(args)


if __name__ == "__main__":
    sys.exit(main())
