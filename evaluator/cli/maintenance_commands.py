"""`ctxeval clean`: what sandboxes left behind."""
from __future__ import annotations

from typing import Optional

import typer

from .common import handles_errors


@handles_errors
def clean(run: Optional[str] = typer.Option(None, help="only this run's resources"),
          expired: bool = typer.Option(False, help="only containers past their deadline (safe while other runs "
                                                   "are going on)"),
          mounts: bool = typer.Option(False, help="also the staged copies of mounted folders (rebuilt on demand)")) -> None:
    """Remove containers and volumes ctxeval left behind. Sandboxes end themselves when the process
    that started them is gone, or at their deadline; this finds those an engine could not end."""
    import time

    from ..sandbox.cleanup import cleanup, leftovers
    before = leftovers()
    report = cleanup(run_id=run, expired_only=expired)
    late = sum(1 for item in before if item.name in report.containers and item.expired(time.time()))
    typer.echo(f"removed {len(report.containers)} containers ({late} past their deadline), "
               f"{len(report.volumes)} volumes")
    if mounts:
        from ..sandbox.staging import clear_stage
        typer.echo(f"removed {clear_stage()} staged mount folders")


COMMANDS = {"clean": clean}
