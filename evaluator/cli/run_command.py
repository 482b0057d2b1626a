"""`ctxeval run`: a sweep of episodes (bundles × policies × modes × models × seeds), or the rest of one."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import BACKEND, RUNS_DIR_HELP, chosen_backend, console, fail, handles_errors, image_for, load_bundle_arg

# Every option of `ctxeval run`, named, with its default and meaning.
BUNDLES = typer.Argument(None, metavar="BUNDLE...", help="bundle folders or ids")
AGENT = typer.Option("model", help="model | oracle | noop | actions")
MODELS = typer.Option(None, "--model", help="openai:<m> | anthropic:<m> | scripted:<name> | replay:<file>; repeat to "
                                            "sweep (default: scripted:hill_climb, or scripted:react in agentic mode)")
POLICIES = typer.Option(None, "--policy", help="preset, policy name or YAML file (see `ctxeval policies`); repeat "
                                               "to sweep (default: full_history)")
MODES = typer.Option(None, "--mode", help="controller | agentic; repeat to sweep (default: controller)")
RUN_FILE = typer.Option(None, "--file", "-f", help="a YAML run file (evaluator/schemas/run_matrix.schema.json)")
BASE_URL = typer.Option(None, help="OpenAI-compatible server URL (vLLM, Ollama, ...)")
MAX_STEPS = typer.Option(None, min=1, help="step budget (default: the bundle's)")
MAX_TOKENS = typer.Option(None, min=1, help="token budget (prompt + completion + summarizer)")
MAX_COST = typer.Option(None, min=0, help="cost budget in USD")
WALL_SECONDS = typer.Option(None, min=1, help="wall-time budget per episode")
STOP_ON_VALID = typer.Option(False, help="agentic: stop as soon as the output is schema-valid")
RECORD = typer.Option(None, help="record every model reply to this cassette (replay:FILE); one cassette per "
                                 "episode when the run has several")
ACTIONS = typer.Option(None, help="actions file for the scripted actions agent")
SEEDS = typer.Option(None, min=1, help="number of seeds (0..N-1; default 1)")
SEED = typer.Option(None, "--seed", help="run this seed (repeatable)")
MAX_PARALLEL = typer.Option(None, min=1, max=64, help="episodes run at once (default 1)")
NO_REUSE = typer.Option(False, "--no-reuse", help="one sandbox per episode (default: a run keeps warm sandboxes "
                        "across its episodes, with a verified reset between them)")
EXECUTOR = typer.Option(None, help="local | ray: run episodes in threads on this host (default), or as Ray tasks "
                        "on the nodes of a Ray cluster that advertise the ctxeval_sandbox resource")
RAY_ADDRESS = typer.Option(None, help="the Ray cluster for --executor ray (default RAY_ADDRESS, else a local Ray "
                           "started for the run)")
IMAGE_REGISTRY = typer.Option(None, help="with --executor ray: push the run's images to this registry (host[:port]"
                               "[/path]) and have the nodes pull them instead of building them")
REUSE_LIMIT = typer.Option(None, min=1, help="episodes one warm sandbox serves before it is retired (default 20)")
RUNTIME = typer.Option(None, help="container runtime, e.g. runsc (gVisor)")
PROBES = typer.Option(None, help="on | off: ask the bundles' probes (default: on where a bundle declares them; "
                                 "facts are planted either way)")
RUN_ID = typer.Option(None, help="name the run (default: time + random)")
RESUME = typer.Option(None, help="finish an interrupted run RUN_ID (its own matrix)")
PHOENIX = typer.Option(None, help="export spans to this Phoenix URL (default: PHOENIX_COLLECTOR_ENDPOINT, if set)")
PHOENIX_PROJECT = typer.Option(None, help="Phoenix project (default: PHOENIX_PROJECT_NAME or ctxeval)")
RUNS_DIR = typer.Option(None, help=RUNS_DIR_HELP)


def _probes_flag(value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("on", "off"):
        fail(f"--probes must be on or off, not {value!r}")
    return value == "on"


def _resumed(run_id: str, runs_dir: Path | None) -> tuple[Any, dict[str, Any]]:
    """The matrix and options stored by the run being resumed."""
    from ..matrix import RunMatrix
    from ..paths import runs_dir as default_runs_dir
    from ..runs import load_run_record
    stored = load_run_record((runs_dir or default_runs_dir()) / run_id)
    options = {key: stored.get(key) for key in ("backend", "runtime", "budget", "max_parallel", "probes", "reuse",
                                                         "reuse_limit", "executor", "ray_address",
                                                         "image_registry")}
    return RunMatrix.from_record(stored["matrix"]), options


def _budget(stored: dict[str, Any], max_steps, max_tokens, max_cost, wall_seconds):
    """The command line's budget, each limit falling back to the run file's or resumed run's."""
    from ..episode.context import Budget
    return Budget(max_steps=max_steps or stored.get("max_steps"), max_tokens=max_tokens or stored.get("max_tokens"),
                  max_cost_usd=max_cost if max_cost is not None else stored.get("max_cost_usd"),
                  wall_seconds=wall_seconds or stored.get("wall_seconds"))


@handles_errors
def run(bundle_paths: list[Path] = BUNDLES, agent: str = AGENT, model: list[str] = MODELS,
        policy: list[str] = POLICIES, mode: list[str] = MODES, file: Optional[Path] = RUN_FILE,
        base_url: Optional[str] = BASE_URL, max_steps: Optional[int] = MAX_STEPS,
        max_tokens: Optional[int] = MAX_TOKENS, max_cost: Optional[float] = MAX_COST,
        wall_seconds: Optional[float] = WALL_SECONDS, stop_on_valid_output: bool = STOP_ON_VALID,
        record: Optional[Path] = RECORD, actions: Optional[Path] = ACTIONS, seeds: Optional[int] = SEEDS,
        seed: list[int] = SEED, max_parallel: Optional[int] = MAX_PARALLEL, backend: Optional[str] = BACKEND,
        no_reuse: bool = NO_REUSE, reuse_limit: Optional[int] = REUSE_LIMIT,
        executor: Optional[str] = EXECUTOR, ray_address: Optional[str] = RAY_ADDRESS,
        image_registry: Optional[str] = IMAGE_REGISTRY,
        runtime: Optional[str] = RUNTIME, probes: Optional[str] = PROBES, run_id: Optional[str] = RUN_ID,
        resume: Optional[str] = RESUME, phoenix: Optional[str] = PHOENIX,
        phoenix_project: Optional[str] = PHOENIX_PROJECT, runs_dir: Optional[Path] = RUNS_DIR) -> None:
    """Run a sweep of episodes (bundles × policies × modes × models × seeds) into runs/<run_id>/."""
    from ..matrix import RunMatrix
    from ..runs import RunSettings, matrix_jobs
    from ..tracing import phoenix_settings
    from .progress import execute_with_progress
    options: dict[str, Any] = {}
    if resume:
        if bundle_paths or file or policy or mode or model or seeds or seed or actions:
            fail("--resume runs the run's own matrix: drop the bundles, --file, --policy, --mode, --model, "
                 "--seed(s) and --actions")
        matrix, options = _resumed(resume, runs_dir)
    elif file:
        matrix = RunMatrix.from_file(file)
        if bundle_paths:
            fail("give the bundles in the run file or on the command line, not both")
        options = dict(matrix.options)
    else:
        matrix = RunMatrix.from_options([str(p) for p in bundle_paths or []], agent=agent, policies=policy,
                                        modes=mode, models=model, seeds=list(seed) if seed else list(range(seeds or 1)),
                                        base_url=base_url, stop_on_valid_output=stop_on_valid_output,
                                        actions=str(actions) if actions else None)
    budget = _budget(options.get("budget") or {}, max_steps, max_tokens, max_cost, wall_seconds)
    chosen = chosen_backend(backend or options.get("backend"))
    bundles = {name: load_bundle_arg(Path(name)) for name in matrix.bundles}
    settings = RunSettings(backend=chosen, root=runs_dir, runtime=runtime or options.get("runtime"),
                           budget=budget, max_parallel=max_parallel or options.get("max_parallel") or 1,
                           phoenix=phoenix_settings(phoenix, phoenix_project),
                           probes=_probes_flag(probes or options.get("probes")),
                           reuse=not no_reuse and options.get("reuse", True) is not False,
                           executor=executor or options.get("executor") or "local",
                           ray_address=ray_address or options.get("ray_address"),
                           image_registry=image_registry or options.get("image_registry"),
                           **({"reuse_limit": reuse_limit or options["reuse_limit"]}
                              if reuse_limit or options.get("reuse_limit") else {}),
                           **({"run_id": resume or run_id} if (resume or run_id) else {}))
    if not resume and (settings.run_dir / "run.json").exists():
        fail(f"run {settings.run_id} exists: finish it with --resume {settings.run_id}, or pick another --run-id")
    images = {name: image_for(bundle, chosen) for name, bundle in bundles.items()}
    jobs = matrix_jobs(matrix, bundles, images, record=record)
    execute_with_progress(console(), settings, matrix, jobs, images)


COMMANDS = {"run": run}
