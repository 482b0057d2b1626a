"""Commands on bundles: validate, build, check, grade, reset, and the policies they can be run with."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import BACKEND, bundle_path, chosen_backend, console, fail, handles_errors, image_for, load_bundle_arg


def validate(bundles: list[Path] = typer.Argument(..., help="bundle folders or bundle.yaml files")) -> None:
    """Validate bundle manifests and the schemas they name; report every violation with file and JSON path.
    A bundle's variants are listed and validated too (`bundles/toy@long` validates that variant only)."""
    from ..bundles import load_bundle
    from ..errors import CtxevalError, ValidationFailed
    failed = False
    queue = list(bundles)
    while queue:
        path = queue.pop(0)
        try:
            bundle = load_bundle(bundle_path(path))
            listed = bundle.variants if bundle.variant is None else ()
            typer.echo(f"ok  {bundle.id} {bundle.version} ({bundle.manifest_path})"
                       + (f" variants: {', '.join(listed)}" if listed else ""))
            queue[:0] = [Path(f"{bundle.root}@{name}") for name in listed]
        except ValidationFailed as exc:
            failed = True
            for violation in exc.violations:
                typer.echo(f"FAIL {violation}", err=True)
        except CtxevalError as exc:
            failed = True
            typer.echo(f"FAIL {path}: {exc}", err=True)
    if failed:
        raise typer.Exit(1)


@handles_errors
def check(bundle_path_arg: Path = typer.Argument(..., metavar="BUNDLE"), backend: Optional[str] = BACKEND,
          runs_dir: Optional[Path] = typer.Option(None, help="where the check's episodes are written")) -> None:
    """Prove a bundle sound: manifest and schemas validate, the image builds, the oracle passes, the no-op fails."""
    from ..check import check_bundle
    out = console()
    bundle = load_bundle_arg(bundle_path_arg)
    if bundle.variant is None and bundle.variants:
        out.print(f"variants: {', '.join(bundle.variants)} (check one with `ctxeval check "
                  f"{bundle_path_arg}@{bundle.variants[0]}`)", highlight=False)
    chosen = chosen_backend(backend)
    image, image_hash = image_for(bundle, chosen)
    report = check_bundle(bundle, chosen, image, image_hash, runs_root=runs_dir)
    for item in report.items:
        mark = "[green]PASS[/]" if item.passed else "[red]FAIL[/]"
        out.print(f"{mark} {item.name}: {item.detail}", highlight=False)
    if not report.passed:
        raise typer.Exit(1)
    typer.echo(f"bundle {bundle.id} is sound")


@handles_errors
def grade(bundle_path_arg: Path = typer.Argument(..., metavar="BUNDLE"),
          submission: Path = typer.Option(..., help="the file to grade (e.g. a submission CSV)"),
          backend: Optional[str] = BACKEND) -> None:
    """Grade one submission file outside any episode and print the grade JSON."""
    import json

    from ..bundles.data import prepare_data
    from ..episode.grading import grade_submission_file
    bundle = load_bundle_arg(bundle_path_arg)
    chosen = chosen_backend(backend)
    image, _ = image_for(bundle, chosen)
    outcome = grade_submission_file(bundle, submission, chosen, image, prepare_data(bundle))
    if outcome.grade is None:
        fail("; ".join(outcome.errors))
    typer.echo(json.dumps(outcome.grade, indent=2, sort_keys=True))
    if outcome.errors:
        fail("grade.json violates its schema: " + "; ".join(outcome.errors))


@handles_errors
def reset(bundle_path_arg: Path = typer.Argument(..., metavar="BUNDLE"),
          workspace: Path = typer.Option(..., help="the folder to restore to the starter state"),
          force: bool = typer.Option(False, help="empty a non-empty folder first")) -> None:
    """Restore a workspace folder to the bundle's starter state (the start of an RL episode)."""
    import shutil

    from ..sandbox.base import folder_digest
    bundle = load_bundle_arg(bundle_path_arg)
    if workspace.exists() and any(workspace.iterdir()):
        if not force:
            fail(f"{workspace} is not empty: pass --force to replace its contents with the starter")
        for child in workspace.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copytree(bundle.starter_dir, workspace, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    digest = folder_digest(workspace)
    if digest != folder_digest(bundle.starter_dir):
        fail(f"{workspace} does not match the starter after the reset")
    typer.echo(f"{workspace} reset to the starter of {bundle.id} (digest {digest[:16]})")


def policies_command() -> None:
    """List the context policies (with their parameters) and the presets."""
    from rich.console import Console
    from rich.table import Table

    from policies import list_policies, list_presets
    out = Console()
    table = Table(title="context policies (--policy NAME uses the defaults)")
    for column in ("policy", "description", "parameters (defaults)"):
        table.add_column(column)
    for name, description, params in list_policies():
        table.add_row(name, description, ", ".join(f"{k}={v}" for k, v in params.items()))
    out.print(table)
    presets = Table(title="presets (--policy PRESET, or --policy FILE.yaml)")
    for column in ("preset", "policy", "parameters", "budget", "clarification", "description"):
        presets.add_column(column)
    for preset in list_presets():
        presets.add_row(preset.name, preset.policy, ", ".join(f"{k}={v}" for k, v in preset.params.items()),
                        str(preset.budget_tokens), preset.clarification, preset.description)
    out.print(presets)


COMMANDS = {"validate": validate, "check": check, "grade": grade, "reset": reset, "policies": policies_command}
