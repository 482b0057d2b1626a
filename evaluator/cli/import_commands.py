"""`ctxeval import mlebench`: write a bundle from another benchmark's task folder."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import console, handles_errors, warn


@handles_errors
def mlebench(competition: str = typer.Argument(..., metavar="COMPETITION", help="the competition id (its folder under mlebench/competitions/)"),
             from_dir: Path = typer.Option(..., "--from", help="the MLE-bench checkout (the folder holding mlebench/)"),
             out: Optional[Path] = typer.Option(None, help="the bundle folder to write [default: bundles/<id>]"),
             bundle_id: Optional[str] = typer.Option(None, "--id", help="the bundle id [default: the competition id, "
                                                                        "lower case with _]"),
             force: bool = typer.Option(False, help="replace an existing bundle folder"),
             reference: Optional[Path] = typer.Option(None, help="a reference solution: a folder copied over the "
                                                                 "starter by the oracle (`ctxeval check` needs one)"),
             reference_command: Optional[str] = typer.Option(None, help="what the oracle runs after copying "
                                                                        "--reference [default: python3 make_submission.py]"),
             success: str = typer.Option("bronze", help="the medal level that counts as success: gold, silver, "
                                                        "bronze (any medal) or median"),
             raw_file: Optional[List[str]] = typer.Option(None, "--raw-file", help="a raw file prepare.py reads "
                                                                                   "(repeatable) [default: read "
                                                                                   "from prepare.py]")) -> None:
    """Import one MLE-bench competition as a ctxeval bundle: its prepare, grade function, checksums and
    leaderboard (medal thresholds) are checked and copied from the checkout; success is a medal."""
    from ..importers.mlebench import ImportOptions, import_mlebench
    result = import_mlebench(ImportOptions(
        checkout=from_dir, competition_id=competition, out=out, bundle_id=bundle_id, force=force,
        reference=reference, reference_command=reference_command, success_level=success,
        raw_files=tuple(raw_file or ())))
    for note in result.warnings:
        warn(note)
    m = result.medals
    console().print(f"medal thresholds ({m.teams} teams, {m.direction}): gold {m.gold:g}, silver {m.silver:g}, "
                    f"bronze {m.bronze:g}, median {m.median:g}; success = {result.success_level} "
                    f"({result.threshold:g})", highlight=False)
    typer.echo(f"bundle {result.bundle_id} written to {result.path}")
    typer.echo(f"next: ctxeval data fetch {result.path} [--from RAW_DIR]; ctxeval data prepare {result.path}")


COMMANDS = {"mlebench": mlebench}
