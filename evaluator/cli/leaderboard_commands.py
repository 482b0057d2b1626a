"""`ctxeval submit` and `ctxeval leaderboard`. Imports stay inside the commands (fast --help)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import BACKEND, chosen_backend, console, fail, handles_errors


def _slug(text: str) -> str:
    import re
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or "x"


def _interval(value, digits: int = 3) -> str:
    if value.estimate is None:
        return "-"
    if value.low is None:
        return f"{value.estimate:.{digits}g}"
    return f"{value.estimate:.{digits}g} [{value.low:.{digits}g}, {value.high:.{digits}g}]"


@handles_errors
def submit(run: Optional[str] = typer.Argument(None, metavar="RUN", help="run id or run folder"),
           folder: Optional[Path] = typer.Option(None, "--folder",
                                                 help="verify and add an existing submission folder instead"),
           policy: Optional[str] = typer.Option(None, help="the arm's context policy (runs with several arms)"),
           mode: Optional[str] = typer.Option(None, help="the arm's mode (controller | agentic | fixed)"),
           model: Optional[str] = typer.Option(None, help="the arm's model"),
           out: Optional[Path] = typer.Option(None, help="where the submission folder is written "
                                                         "(default: <run>/submission-<arm>/)"),
           backend: Optional[str] = BACKEND,
           leaderboard: Optional[Path] = typer.Option(None, help="the leaderboard folder (default: "
                                                                 "CTXEVAL_LEADERBOARD_DIR (environment or .env) or leaderboard/)"),
           runs_dir: Optional[Path] = typer.Option(None, help="where RUN is looked up (default: runs/)"),
           dry_run: bool = typer.Option(False, help="verify only; do not add to the leaderboard")) -> None:
    """Submit one arm of a run (build, re-grade every episode, add) or an existing submission folder."""
    from ..analysis.leaderboard import accept_submission
    from ..regrade import verify_submission
    from ..analysis.loading import load_run
    from ..analysis.submission import SubmissionArm, select_arm, write_submission
    screen = console()
    if (run is None) == (folder is None):
        fail("give either RUN (to build a submission from a run) or --folder DIR (an existing one)")
    chosen = chosen_backend(backend)
    if run is not None:
        loaded = load_run(run, runs_dir)
        arm: SubmissionArm = select_arm(loaded.results, mode=mode, model=model, policy=policy)
        target = out or loaded.run_dir / f"submission-{_slug(f'{arm.mode}-{arm.policy}-{arm.model}')}"
        path, document = write_submission(loaded, target, arm)
        screen.print(f"submission of {arm.label}: {len(document['episodes'])} episodes → {path}", highlight=False)
    else:
        path = folder
    with screen.status("verifying…") as status:
        reasons = verify_submission(path, chosen, log=lambda m: status.update(m[:100]))
    if reasons:
        screen.print(f"[bold red]rejected[/] {path}: {len(reasons)} reason(s)", highlight=False)
        for reason in reasons:
            screen.print(f"  - {reason}", highlight=False, markup=False)
        raise typer.Exit(1)
    if dry_run:
        typer.echo(f"verified (not added): {path}")
        return
    stored, new = accept_submission(path, leaderboard)
    typer.echo(f"accepted: {stored}" + ("" if new else " (already on the leaderboard)"))


@handles_errors
def leaderboard_command(bundle: Optional[str] = typer.Option(None, help="only this bundle"),
                        dir: Optional[Path] = typer.Option(None, "--dir", help="the leaderboard folder"),
                        as_json: bool = typer.Option(False, "--json", help="print the rows as JSON")) -> None:
    """Rank the accepted submissions per bundle: success rate (Wilson 95 %), mean score (bootstrap 95 %)."""
    import json

    from rich.markup import escape

    from ..analysis.leaderboard import leaderboard_dir, leaderboard_table, load_entries, seed_shortfalls
    out = console()
    entries, problems = load_entries(dir)
    for problem in problems:
        out.print(f"[yellow]warning:[/] skipped {problem}", highlight=False)
    for name, document in entries:
        for shortfall in seed_shortfalls(document):
            out.print(f"[yellow]warning:[/] not ranked: {escape(f'{name}: {shortfall}')}", highlight=False)
    rows = leaderboard_table(dir, bundle)
    if as_json:
        typer.echo(json.dumps([r.as_record() for r in rows], indent=2, sort_keys=True))
        return
    if not rows:
        typer.echo(f"no accepted submissions{f' on {bundle}' if bundle else ''} in {dir or leaderboard_dir()}")
        return
    _print_tables(rows)


COMMANDS = {"submit": submit, "leaderboard": leaderboard_command}


def _print_tables(rows) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    groups: dict[tuple[str, str], list] = {}
    for row in rows:
        groups.setdefault((row.bundle, row.bundle_hash), []).append(row)
    for (bundle, bundle_hash), group in groups.items():
        first = group[0]
        arrow = "↑" if first.direction == "maximize" else "↓"
        with_medals = any(r.medals for r in group)
        with_probes = any(r.probe_recall is not None for r in group)  # a column only where entries had probes
        table = Table(title=f"{bundle} {first.bundle_version} ({bundle_hash[:12]}) · {first.metric} {arrow}",
                      caption="\\[lo, hi]: 95 % intervals (Wilson; bootstrap). tokens, cost"
                              f"{', probe recall' if with_probes else ''}: means per episode. --json: every field",
                      box=box.SIMPLE_HEAD)
        columns = ["#", "model · policy · mode", "n", "success", f"mean {first.metric}"]
        columns += ["g/s/b/>med"] if with_medals else []
        columns += ["probe recall"] if with_probes else []
        columns += ["tokens", "cost $"]
        for column in columns:
            table.add_column(column, justify="right" if column in ("#", "n", "tokens", "cost $") else "left")
        for r in group:
            rate = r.success_rate
            cells = [str(r.rank), f"{r.model} · {r.policy} · {r.mode}", str(r.n),
                     f"{r.successes}/{r.n} [{rate.low:.2f}, {rate.high:.2f}]", _interval(r.mean_score, 4)]
            if with_medals:
                cells.append("/".join(str(r.medals.get(m, 0)) for m in ("gold", "silver", "bronze", "above_median")))
            if with_probes:
                cells.append("-" if r.probe_recall is None else _interval(r.probe_recall, 3))
            cells += [f"{r.mean_tokens:,.0f}", f"{r.mean_cost_usd:.4g}"]
            table.add_row(*cells)
        console.print(table)
