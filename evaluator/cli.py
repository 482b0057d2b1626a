"""The `ctxeval` command line. Imports stay inside commands so `ctxeval --help` starts fast."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ctxeval: containerized task bundles for measuring how context policies shape LLM agents.")
data_app = typer.Typer(no_args_is_help=True, help="Prepare bundle data (public files and private answers).")
app.add_typer(data_app, name="data")


def _console():
    from rich.console import Console
    return Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 2) -> None:
    _console().print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _bundle_path(path: Path) -> Path:
    """A bundle folder, its manifest, or the id of a bundle under bundles/; any of them may name a
    variant (`toy@long`)."""
    from .bundles.variants import split_variant
    from .paths import BUNDLES_DIR
    base, variant = split_variant(path)
    if not base.exists() and (BUNDLES_DIR / str(base) / "bundle.yaml").exists():
        return Path(f"{BUNDLES_DIR / str(base)}@{variant}") if variant is not None else BUNDLES_DIR / str(base)
    return Path(path)


def _load(path: Path):
    from .bundles import load_bundle
    from .errors import ValidationFailed
    try:
        return load_bundle(_bundle_path(path))
    except ValidationFailed as exc:
        _fail("invalid bundle:\n" + "\n".join(f"  {v}" for v in exc.violations))


def _guard(fn):
    """Run a command body; a CtxevalError becomes a one-line message, never a traceback."""
    from .errors import CtxevalError, ValidationFailed
    from .interrupts import RunInterrupted
    try:
        return fn()
    except ValidationFailed as exc:
        _fail("\n".join(str(v) for v in exc.violations))
    except RunInterrupted as exc:  # a stop signal: 128 + its number, as a shell would report it
        _console().print(f"[bold yellow]interrupted:[/] {exc}", highlight=False)
        raise typer.Exit(exc.exit_code)
    except CtxevalError as exc:
        _fail(str(exc))


def _image_for(bundle, backend: str, base_source: str = "auto"):
    if backend != "docker":
        return None, None
    from .images import ImageBuilder
    console = _console()
    with console.status(f"images for {bundle.id}…") as status:
        builder = ImageBuilder(base_source=base_source, log=lambda m: status.update(m[:100]))
        ref = builder.bundle_image(bundle)
    console.print(f"image {ref.tag} ({'built' if ref.built else 'cached'})")
    return ref.tag, ref.input_hash


@app.command()
def validate(bundles: list[Path] = typer.Argument(..., help="bundle folders or bundle.yaml files")) -> None:
    """Validate bundle manifests and the schemas they name; report every violation with file and JSON path.
    A bundle's variants are listed and validated too (`bundles/toy@long` validates that variant only)."""
    from .bundles import load_bundle
    from .errors import CtxevalError, ValidationFailed
    failed = False
    queue = [_bundle_path(path) for path in bundles]
    while queue:
        path = queue.pop(0)
        try:
            bundle = load_bundle(path)
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


@app.command()
def build(bundles: list[Path] = typer.Argument(None, help="bundles to build (default: all under bundles/)"),
          base_source: str = typer.Option("auto", help="auto | registry | offline"),
          changed_since: Optional[str] = typer.Option(
              None, "--changed-since", metavar="REF",
              help="build only the images whose input hash differs from the one at git REF (commit, branch or "
                   "tag; uncommitted changes count). Decided by hash, not by file names: a README edit builds "
                   "nothing, a changed base rebuilds every bundle. Skipped images are listed with the reason."),
          push: Optional[str] = typer.Option(
              None, "--push", metavar="REGISTRY",
              help="then tag every image this command built or found cached as REGISTRY/ctxeval/<name>:<hash> "
                   "and push it (e.g. localhost:5000 or ghcr.io/org); prints each pushed digest. Credentials: "
                   "the Docker config (docker login), or --registry-username with DOCKER_PASSWORD."),
          registry_username: Optional[str] = typer.Option(
              None, "--registry-username",
              help="log in to the --push registry as this user; the password or token is read from the "
                   "DOCKER_PASSWORD environment variable (never printed)")) -> None:
    """Build the base image and bundle images, tagged by input hash; existing tags are skipped.

    --changed-since REF: build only the images whose inputs changed since a git revision.

    --push REGISTRY: then push the images built (or found cached) to a registry.
    """
    from .images import ImageBuilder
    from .paths import BUNDLES_DIR

    def body():
        paths = bundles or sorted(p.parent for p in BUNDLES_DIR.glob("*/bundle.yaml"))
        console = _console()
        registry = auth = None
        if push is not None:
            from .images.push import normalize_registry, registry_auth
            registry, auth = normalize_registry(push), registry_auth(registry_username)
        elif registry_username:
            _fail("--registry-username only goes with --push REGISTRY")
        loaded = [_load(path) for path in paths]
        if changed_since is not None:  # a bad REF fails at once, before the Docker engine is asked
            from .images.changes import git_toplevel, resolve_commit
            from .paths import PROJECT_ROOT
            resolve_commit(changed_since, git_toplevel(PROJECT_ROOT))
        selected, reasons, build_base, to_push, pushed = loaded, {}, True, [], []
        with console.status("base image…") as status:
            builder = ImageBuilder(base_source=base_source, log=lambda m: status.update(m[:100]))
            if changed_since is not None:
                from .images.changes import plan_changed_since
                status.update(f"comparing input hashes with {changed_since}…")
                plan = plan_changed_since(builder, loaded, changed_since)
                console.print(f"changed since {changed_since} ({plan.commit[:12]}), by input hash:", highlight=False)
                build_base = plan.base.build
                if not build_base:
                    console.print(f"skip   base {plan.base.tag}: {plan.base.reason}", highlight=False)
                for bundle, decision in plan.bundles:
                    if not decision.build:
                        console.print(f"skip   bundle {decision.tag}: {decision.reason}", highlight=False)
                selected = plan.to_build
                reasons = {bundle.id: decision.reason for bundle, decision in plan.bundles}
                if not build_base and not selected:
                    console.print(f"nothing changed since {changed_since}: no image to build"
                                  + (", none to push" if registry else ""), highlight=False)
                elif build_base:
                    console.print(f"base   {plan.base.reason}", highlight=False)
            if build_base:
                base = builder.base_image()
                console.print(f"base   {base.tag} ({'built' if base.built else 'cached'})")
                to_push.append(base.tag)
            for bundle in selected:
                ref = builder.bundle_image(bundle)
                why = f": {reasons[bundle.id]}" if bundle.id in reasons else ""
                console.print(f"bundle {ref.tag} ({'built' if ref.built else 'cached'}){why}", highlight=False)
                to_push.append(ref.tag)
            if registry and to_push:
                from .images.push import push_images
                pushed = push_images(builder.client, to_push, registry, auth,
                                     log=lambda m: status.update(m[:100]))
        for item in pushed:
            typer.echo(f"pushed {item.remote} {item.digest}")
    _guard(body)


@app.command()
def run(bundle_paths: list[Path] = typer.Argument(None, metavar="BUNDLE...", help="bundle folders or ids"),
        agent: str = typer.Option("model", help="model | oracle | noop | actions"),
        model: list[str] = typer.Option(None, help="openai:<m> | anthropic:<m> | scripted:<name> | replay:<file>; "
                                                    "repeat to sweep (default: scripted:hill_climb, or scripted:react "
                                                    "in agentic mode)"),
        policy: list[str] = typer.Option(None, help="preset, policy name or YAML file (see `ctxeval policies`); "
                                                     "repeat to sweep (default: full_history)"),
        mode: list[str] = typer.Option(None, help="controller | agentic; repeat to sweep (default: controller)"),
        file: Optional[Path] = typer.Option(None, "--file", "-f", help="a YAML run file (schemas/run_matrix.schema.json)"),
        base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL (vLLM, Ollama, ...)"),
        max_steps: Optional[int] = typer.Option(None, min=1, help="step budget (default: the bundle's)"),
        max_tokens: Optional[int] = typer.Option(None, min=1, help="token budget (prompt + completion + summarizer)"),
        max_cost: Optional[float] = typer.Option(None, min=0, help="cost budget in USD"),
        wall_seconds: Optional[float] = typer.Option(None, min=1, help="wall-time budget per episode"),
        stop_on_valid_output: bool = typer.Option(False, help="agentic: stop as soon as the output is schema-valid"),
        record: Optional[Path] = typer.Option(None, help="record every model reply to this cassette (replay:FILE); "
                                                         "one cassette per episode when the run has several"),
        actions: Optional[Path] = typer.Option(None, help="actions file for the scripted actions agent"),
        seeds: Optional[int] = typer.Option(None, min=1, help="number of seeds (0..N-1; default 1)"),
        seed: list[int] = typer.Option(None, help="run this seed (repeatable)"),
        max_parallel: Optional[int] = typer.Option(None, min=1, max=64, help="episodes run at once (default 1)"),
        backend: Optional[str] = typer.Option(None, help="auto | docker | local (default auto)"),
        runtime: Optional[str] = typer.Option(None, help="container runtime, e.g. runsc (gVisor)"),
        probes: Optional[str] = typer.Option(None, help="on | off: ask the bundles' probes (default: on where a "
                                                        "bundle declares them; facts are planted either way)"),
        run_id: Optional[str] = typer.Option(None, help="name the run (default: time + random)"),
        resume: Optional[str] = typer.Option(None, help="finish an interrupted run RUN_ID (its own matrix)"),
        phoenix: Optional[str] = typer.Option(None, help="export spans to this Phoenix URL "
                                                          "(default: PHOENIX_COLLECTOR_ENDPOINT, if set)"),
        phoenix_project: Optional[str] = typer.Option(None, help="Phoenix project (default: PHOENIX_PROJECT_NAME "
                                                                  "or ctxeval)"),
        runs_dir: Optional[Path] = typer.Option(None, help="where runs are written (default: runs/)")) -> None:
    """Run a sweep of episodes (bundles × policies × modes × models × seeds) into runs/<run_id>/."""
    from .episode.context import Budget
    from .matrix import RunMatrix
    from .runs import RunSettings, load_run_record, matrix_jobs
    from .sandbox import resolve_backend
    from .tracing import phoenix_settings

    def body():
        console = _console()
        options: dict = {}
        if resume:
            if bundle_paths or file or policy or mode or model or seeds or seed or actions:
                _fail("--resume runs the run's own matrix: drop the bundles, --file, --policy, --mode, --model, "
                      "--seed(s) and --actions")
            root = runs_dir
            from .paths import runs_dir as default_runs_dir
            stored = load_run_record((root or default_runs_dir()) / resume)
            matrix = RunMatrix.from_record(stored["matrix"])
            options = {"backend": stored.get("backend"), "runtime": stored.get("runtime"),
                       "budget": stored.get("budget"), "max_parallel": stored.get("max_parallel"),
                       "probes": stored.get("probes")}
        elif file:
            matrix = RunMatrix.from_file(file)
            if bundle_paths:
                _fail("give the bundles in the run file or on the command line, not both")
            options = dict(matrix.options)
        else:
            seed_list = list(seed) if seed else list(range(seeds or 1))
            matrix = RunMatrix.from_options([str(p) for p in bundle_paths or []], agent=agent, policies=policy,
                                            modes=mode, models=model, seeds=seed_list, base_url=base_url,
                                            stop_on_valid_output=stop_on_valid_output,
                                            actions=str(actions) if actions else None)
        stored_budget = options.get("budget") or {}
        budget = Budget(max_steps=max_steps or stored_budget.get("max_steps"),
                        max_tokens=max_tokens or stored_budget.get("max_tokens"),
                        max_cost_usd=max_cost if max_cost is not None else stored_budget.get("max_cost_usd"),
                        wall_seconds=wall_seconds or stored_budget.get("wall_seconds"))
        chosen = resolve_backend(backend or options.get("backend") or "auto",
                                 warn=lambda m: console.print(f"[yellow]warning:[/] {m}"))
        bundles = {name: _load(Path(name)) for name in matrix.bundles}
        settings = RunSettings(backend=chosen, root=runs_dir, runtime=runtime or options.get("runtime"),
                               budget=budget, max_parallel=max_parallel or options.get("max_parallel") or 1,
                               phoenix=phoenix_settings(phoenix, phoenix_project),
                               probes=_probes_flag(probes or options.get("probes")),
                               **({"run_id": resume or run_id} if (resume or run_id) else {}))
        if not resume and (settings.run_dir / "run.json").exists():
            _fail(f"run {settings.run_id} exists: finish it with --resume {settings.run_id}, or pick another --run-id")
        images = {name: _image_for(bundle, chosen) for name, bundle in bundles.items()}
        jobs = matrix_jobs(matrix, bundles, images, record=record)
        from .cli_progress import execute_with_progress
        execute_with_progress(console, settings, matrix, jobs, images)
    _guard(body)


def _probes_flag(value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("on", "off"):
        _fail(f"--probes must be on or off, not {value!r}")
    return value == "on"


@app.command()
def check(bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
          backend: str = typer.Option("auto", help="auto | docker | local"),
          runs_dir: Optional[Path] = typer.Option(None, help="where the check's episodes are written")) -> None:
    """Prove a bundle sound: manifest and schemas validate, the image builds, the oracle passes, the no-op fails."""
    from .check import check_bundle
    from .sandbox import resolve_backend

    def body():
        console = _console()
        bundle = _load(bundle_path)
        if bundle.variant is None and bundle.variants:
            console.print(f"variants: {', '.join(bundle.variants)} (check one with `ctxeval check "
                          f"{bundle_path}@{bundle.variants[0]}`)", highlight=False)
        chosen = resolve_backend(backend, warn=lambda m: console.print(f"[yellow]warning:[/] {m}"))
        image, image_hash = _image_for(bundle, chosen)
        report = check_bundle(bundle, chosen, image, image_hash, runs_root=runs_dir)
        for item in report.items:
            mark = "[green]PASS[/]" if item.passed else "[red]FAIL[/]"
            console.print(f"{mark} {item.name}: {item.detail}", highlight=False)
        if not report.passed:
            raise typer.Exit(1)
        typer.echo(f"bundle {bundle.id} is sound")
    _guard(body)


@app.command("policies")
def policies_command() -> None:
    """List the context policies (with their parameters) and the presets."""
    from rich.console import Console
    from rich.table import Table

    from policies import list_policies, list_presets
    console = Console()
    table = Table(title="context policies (--policy NAME uses the defaults)")
    for column in ("policy", "description", "parameters (defaults)"):
        table.add_column(column)
    for name, description, params in list_policies():
        table.add_row(name, description, ", ".join(f"{k}={v}" for k, v in params.items()))
    console.print(table)
    presets = Table(title="presets (--policy PRESET, or --policy FILE.yaml)")
    for column in ("preset", "policy", "parameters", "budget", "clarification", "description"):
        presets.add_column(column)
    for preset in list_presets():
        presets.add_row(preset.name, preset.policy, ", ".join(f"{k}={v}" for k, v in preset.params.items()),
                        str(preset.budget_tokens), preset.clarification, preset.description)
    console.print(presets)


@app.command()
def reset(bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
          workspace: Path = typer.Option(..., help="the folder to restore to the starter state"),
          force: bool = typer.Option(False, help="empty a non-empty folder first")) -> None:
    """Restore a workspace folder to the bundle's starter state (the start of an RL episode)."""
    import shutil

    from .sandbox.base import folder_digest

    def body():
        bundle = _load(bundle_path)
        if workspace.exists() and any(workspace.iterdir()):
            if not force:
                _fail(f"{workspace} is not empty: pass --force to replace its contents with the starter")
            for child in workspace.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        workspace.mkdir(parents=True, exist_ok=True)
        shutil.copytree(bundle.starter_dir, workspace, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        digest = folder_digest(workspace)
        if digest != folder_digest(bundle.starter_dir):
            _fail(f"{workspace} does not match the starter after the reset")
        typer.echo(f"{workspace} reset to the starter of {bundle.id} (digest {digest[:16]})")
    _guard(body)


@data_app.command("fetch")
def data_fetch(bundle_path: Path = typer.Argument(..., metavar="BUNDLE", help="bundle folder or id"),
               from_dir: Optional[Path] = typer.Option(None, "--from", help="copy the raw files from this folder")) -> None:
    """Get a bundle's raw data: from Kaggle (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY) or --from DIR."""
    from .bundles.fetch import fetch_raw

    def body():
        typer.echo(f"raw data in {fetch_raw(_load(bundle_path), from_dir)}")
    _guard(body)


@app.command()
def grade(bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
          submission: Path = typer.Option(..., help="the file to grade (e.g. a submission CSV)"),
          backend: str = typer.Option("auto", help="auto | docker | local")) -> None:
    """Grade one submission file outside any episode and print the grade JSON."""
    import json

    from .bundles.data import prepare_data
    from .episode.grading import grade_submission_file
    from .sandbox import resolve_backend

    def body():
        console = _console()
        bundle = _load(bundle_path)
        chosen = resolve_backend(backend, warn=lambda m: console.print(f"[yellow]warning:[/] {m}"))
        image, _ = _image_for(bundle, chosen)
        outcome = grade_submission_file(bundle, submission, chosen, image, prepare_data(bundle))
        if outcome.grade is None:
            _fail("; ".join(outcome.errors))
        typer.echo(json.dumps(outcome.grade, indent=2, sort_keys=True))
        if outcome.errors:
            _fail("grade.json violates its schema: " + "; ".join(outcome.errors))
    _guard(body)


@data_app.command("prepare")
def data_prepare(bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
                 force: bool = typer.Option(False, help="prepare again even if cached")) -> None:
    """Run the bundle's data stage (cached under the ctxeval cache)."""
    from .bundles.data import prepare_data

    def body():
        prepared = prepare_data(_load(bundle_path), force=force)
        typer.echo(f"public:  {prepared.public}\nprivate: {prepared.private}")
    _guard(body)


@app.command()
def clean(run: Optional[str] = typer.Option(None, help="only this run's resources"),
          expired: bool = typer.Option(False, help="only containers past their deadline (safe while other runs "
                                                   "are going on)"),
          mounts: bool = typer.Option(False, help="also the staged copies of mounted folders (rebuilt on demand)")) -> None:
    """Remove containers and volumes ctxeval left behind. Sandboxes end themselves when the process
    that started them is gone, or at their deadline; this finds those an engine could not end."""
    from .sandbox.cleanup import cleanup, leftovers
    import time as _time
    before = leftovers()
    report = cleanup(run_id=run, expired_only=expired)
    late = sum(1 for item in before if item.name in report.containers and item.expired(_time.time()))
    typer.echo(f"removed {len(report.containers)} containers ({late} past their deadline), "
               f"{len(report.volumes)} volumes")
    if mounts:
        from .sandbox.staging import clear_stage
        typer.echo(f"removed {clear_stage()} staged mount folders")


from .analysis.commands import register as _register_analysis  # noqa: E402
_register_analysis(app)
from .analysis.leaderboard_commands import register as _register_leaderboard  # noqa: E402
_register_leaderboard(app)


def main() -> None:  # pragma: no cover - entry point
    app(sys.argv[1:])
