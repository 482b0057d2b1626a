"""The `ctxeval` command line: one module per command group, each listing its commands in COMMANDS.

Adding a command: a function in the group's module (typer options, `@handles_errors`) and an entry
in that module's COMMANDS. Imports stay inside the commands so `ctxeval --help` starts fast.
"""
from __future__ import annotations

import sys

import typer

from . import (analysis_commands, bundle_commands, data_commands, image_commands, import_commands,
               leaderboard_commands, maintenance_commands, run_command)

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="ctxeval: containerized task bundles for measuring how context policies shape LLM agents.")
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Prepare bundle data (public files and private answers).")
app.add_typer(data_app, name="data")
import_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Write a bundle from another benchmark's task (MLE-bench).")
app.add_typer(import_app, name="import")

GROUPS = ((app, bundle_commands), (app, image_commands), (app, run_command), (data_app, data_commands),
          (app, maintenance_commands), (app, analysis_commands), (app, leaderboard_commands),
          (import_app, import_commands))
for _target, _module in GROUPS:
    for _name, _command in _module.COMMANDS.items():
        _target.command(_name)(_command)


def main() -> None:  # pragma: no cover - entry point
    app(sys.argv[1:])
