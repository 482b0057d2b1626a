"""`ctxeval run`'s live view: a rich progress bar over the run's episodes, one line per finished one."""
from __future__ import annotations

import threading

import typer

from ..runs import RunHooks, execute_jobs, run_record, summarize


def execute_with_progress(console, settings, matrix, jobs, images) -> None:
    """Run the jobs under a rich progress bar; one line per finished episode."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    record = run_record(settings, matrix=matrix.as_record(),
                        images={name: {"image": tag, "image_hash": digest} for name, (tag, digest) in images.items()},
                        bundles={job.bundle.id: {"version": job.bundle.version, "path": str(job.bundle.root)}
                                 for job in jobs})
    where = ("on Ray (the nodes' ctxeval_sandbox resources set how many at once)" if settings.executor == "ray"
             else f"up to {settings.max_parallel} at once")
    console.print(f"run {settings.run_id}: {len(jobs)} episodes, {where} → "
                  f"{settings.run_dir}" + (f" (Phoenix: {settings.phoenix.endpoint})" if settings.phoenix else ""))
    lock = threading.Lock()
    counts = {"running": 0, "success": 0, "fail": 0}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task("episodes", total=len(jobs))

        def describe() -> str:
            return f"{counts['running']} running · {counts['success']} ✓ · {counts['fail']} ✗"

        def started(job) -> None:
            with lock:
                counts["running"] += 1
                progress.update(task, description=describe())

        def finished(result, resumed: bool) -> None:
            with lock:
                counts["running"] -= 0 if resumed else 1
                counts["success" if result["success"] else "fail"] += 1
                progress.update(task, advance=1, description=describe())
            mark = "[green]success[/]" if result["success"] else "[red]fail[/]"
            progress.console.print(f"  {result['episode_id']}: {mark} score={result['score']} "
                                   f"stop={result['stop_reason']} steps={result['metrics']['steps']}"
                                   + (" (finished earlier)" if resumed else "")
                                   + (f" error={result['error']}" if result["error"] else ""), highlight=False)

        results = execute_jobs(settings, record, jobs, RunHooks(on_start=started, on_episode=finished),
                               warn=lambda m: progress.console.print(f"[yellow]warning:[/] {m}"))
    summary = summarize(results)
    typer.echo(f"{summary['successes']}/{summary['episodes']} episodes succeeded; results in {settings.run_dir}")
