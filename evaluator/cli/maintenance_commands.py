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
    that started them is gone, or at their deadline; this finds those an engine could not end.
    Every registered sandbox provider that is available is asked to clean up after its own."""
    import time

    from ..sandbox import provider, provider_names
    containers = volumes = late = 0
    for name in provider_names():
        sandboxes = provider(name)
        if not sandboxes.available():
            continue
        before = sandboxes.leftovers()
        report = sandboxes.cleanup_leftovers(run_id=run, expired_only=expired)
        containers, volumes = containers + len(report.containers), volumes + len(report.volumes)
        late += sum(1 for item in before if item.name in report.containers and item.expired(time.time()))
    typer.echo(f"removed {containers} containers ({late} past their deadline), {volumes} volumes")
    if mounts:
        from ..sandbox.staging import clear_stage
        typer.echo(f"removed {clear_stage()} staged mount folders")


COMMANDS = {"clean": clean}
