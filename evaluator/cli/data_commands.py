"""`ctxeval data fetch|prepare`: a bundle's raw data, and its public files and private answers."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import handles_errors, load_bundle_arg


@handles_errors
def fetch(bundle_path: Path = typer.Argument(..., metavar="BUNDLE", help="bundle folder or id"),
          from_dir: Optional[Path] = typer.Option(None, "--from", help="copy the raw files from this folder")) -> None:
    """Get a bundle's raw data: from Kaggle (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY) or --from DIR."""
    from ..bundles.fetch import fetch_raw
    typer.echo(f"raw data in {fetch_raw(load_bundle_arg(bundle_path), from_dir)}")


@handles_errors
def prepare(bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
            force: bool = typer.Option(False, help="prepare again even if cached")) -> None:
    """Run the bundle's data stage (cached under the ctxeval cache)."""
    from ..bundles.data import prepare_data
    prepared = prepare_data(load_bundle_arg(bundle_path), force=force)
    typer.echo(f"public:  {prepared.public}\nprivate: {prepared.private}")


COMMANDS = {"fetch": fetch, "prepare": prepare}
