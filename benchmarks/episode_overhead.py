"""Per-episode evaluator overhead against a bare `docker run` of the same image, side by side. Prints JSON.

    .venv/bin/python benchmarks/episode_overhead.py [--bundle bundles/toy] [--episodes 15] [--warmup 1]
                                                    [--keep-busy] [--no-breakdown] [--out FILE]

Each round runs, in alternating order:
  * one no-op episode (`create_agent("noop")`: it submits at once, no model, no command of its
    own) as a complete one-episode run through `evaluator.runs.RunPlan` / `execute` on the docker
    backend, in a fresh run folder: run lock and run.json, leftover clean-up, tracing, the agent
    container and its workspace volume, the starter restored, the output read, the workspace
    copied out, grading in a second container, the result built, validated and written, the
    summary;
  * `docker run --rm IMAGE true` through the docker SDK (`client.containers.run(..., remove=True)`);
  * the same through the `docker` CLI (a subprocess).

Overhead of an episode = its wall time minus model time minus the agent's own in-sandbox time
(`metrics.model_seconds` and `metrics.sandbox_seconds`, both 0 for the no-op agent): everything
the evaluator adds. Two figures: `execute` (the whole call, i.e. a one-episode run) and
`episode` (`metrics.wall_seconds`, run_episode alone). Grading (agent_end -> graded in
events.jsonl: the agent's processes killed, the output read and checked, the workspace copied
out, the grading container) is part of the overhead and is also reported on its own, with the
overhead excluding it. --keep-busy runs it all with the other CPU(s) kept awake by nice-19
spinners (see _bench.KeepBusy: on this VM a half-idle machine is much slower).

`breakdown_ms` splits the overhead by phase, from wrappers timing the evaluator's own functions
(sandbox start/reset/stop, the grader, result hashing, ...); they add a few microseconds per call.
`events_phases_ms` is the same split read only from events.jsonl timestamps and result.json.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import _bench

from evaluator.agents import create_agent
from evaluator.bundles import load_bundle
from evaluator.images import ImageBuilder
from evaluator.runs import RunPlan, execute


class PhaseTimer:
    """Wraps functions so that every call adds its wall time to a named phase.

    One accumulator for all threads (the episode runs in the run's worker thread): valid here
    because this benchmark runs one episode at a time.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.phases: dict[str, float] = defaultdict(float)
        self.patches: list[tuple[Any, str, Any]] = []

    def reset(self) -> None:
        with self.lock:
            self.phases = defaultdict(float)

    def take(self) -> dict[str, float]:
        with self.lock:
            phases, self.phases = dict(self.phases), defaultdict(float)
        return phases

    def wrap(self, owner: Any, attr: str, name: str | Callable[..., str | None]) -> None:
        original = getattr(owner, attr)
        timer = self

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            label = name(*args, **kwargs) if callable(name) else name
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if label:
                    with timer.lock:
                        timer.phases[label] += time.perf_counter() - started

        self.patches.append((owner, attr, original))
        setattr(owner, attr, timed)

    def undo(self) -> None:
        for owner, attr, original in reversed(self.patches):
            setattr(owner, attr, original)
        self.patches.clear()


def instrument(timer: PhaseTimer, grader_command: str) -> None:
    import evaluator.episode.runner as runner
    import evaluator.runs as runs
    import evaluator.tracing.setup as tracing_setup
    from evaluator.sandbox.docker import DockerSandbox

    def grader_exec(sandbox: DockerSandbox, command: str, *_: Any, **__: Any) -> str | None:
        if sandbox.spec.role != "grader":
            return None  # the agent side's execs are timed by the callers below
        return "grading.run_grader" if command == grader_command else "grading.read_grade"

    # the run around the episode
    timer.wrap(runs, "prepare_data", "run.prepare_data")  # resolved at call time in execute()
    timer.wrap(runs, "_clean_leftovers", "run.clean_leftovers")
    timer.wrap(runs, "start_run_tracing", "run.tracing_start")
    timer.wrap(tracing_setup.RunTracing, "shutdown", "run.tracing_shutdown")
    timer.wrap(runs, "write_run_file", "run.write_run_json")
    timer.wrap(runs, "summarize", "run.summarize")
    # the sandboxes (agent and grader)
    timer.wrap(DockerSandbox, "__init__",
               lambda s, spec, *a, **k: "grading.docker_client" if spec.role == "grader" else "agent.docker_client")
    timer.wrap(DockerSandbox, "start", lambda s: "grading.start" if s.spec.role == "grader" else "agent.start")
    timer.wrap(DockerSandbox, "stop", lambda s: "grading.stop" if s.spec.role == "grader" else "agent.stop")
    timer.wrap(DockerSandbox, "reset", "agent.reset")
    timer.wrap(DockerSandbox, "read_file", lambda s, *a, **k: None if s.spec.role == "grader" else "agent.output_check")
    timer.wrap(DockerSandbox, "copy_out", "agent.copy_out")
    if hasattr(DockerSandbox, "quiesce"):  # newer trees: agent processes killed before the copy-out
        timer.wrap(DockerSandbox, "quiesce", "agent.quiesce")
    timer.wrap(DockerSandbox, "exec", grader_exec)
    # grading as a whole, and the result
    timer.wrap(runner, "grade_artefacts", "grading")
    timer.wrap(runner, "hash_tree", "result.hash_bundle_and_grader")
    timer.wrap(runner, "validate", "result.validate")
    timer.wrap(runner, "write_json_atomic", "result.write")


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def events_phases(episode_dir: Path, result: dict[str, Any]) -> dict[str, float]:
    """Phases of one episode from events.jsonl and result.json only (seconds)."""
    ts = {}
    for line in (episode_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        ts.setdefault(event["event"], event["ts"])
    started, finished = _ts(result["started_at"]), _ts(result["finished_at"])
    return {"container_up": ts["episode_start"] - started,  # sandbox created and started
            "reset_and_agent": ts["agent_end"] - ts["episode_start"],  # starter restored; the agent
            "grading": ts["graded"] - ts["agent_end"],  # output check, copy-out, grading container
            "teardown_and_result": finished - ts["graded"]}  # agent container removed, result built


def run_episode_once(bundle: Any, image: str, image_hash: str, root: Path, index: int) -> dict[str, Any]:
    plan = RunPlan(bundle, create_agent("noop"), [0], backend="docker", root=root,
                   run_id=f"bench-overhead-{secrets.token_hex(3)}-{index}")
    started = time.perf_counter()
    [result] = execute(plan, image, image_hash)
    execute_s = time.perf_counter() - started
    if result["status"] != "completed":
        raise SystemExit(f"episode {result['episode_id']} failed: {result['error']}")
    metrics = result["metrics"]
    own = metrics["model_seconds"] + metrics["sandbox_seconds"]
    phases = events_phases(plan.run_dir / "episodes" / result["episode_id"], result)
    shutil.rmtree(plan.run_dir, ignore_errors=True)
    return {"execute_s": execute_s, "episode_s": metrics["wall_seconds"], "model_s": metrics["model_seconds"],
            "agent_sandbox_s": metrics["sandbox_seconds"], "execute_overhead_s": execute_s - own,
            "episode_overhead_s": metrics["wall_seconds"] - own, "grading_s": phases["grading"],
            "events": phases}


def bare_sdk(client: Any, image: str) -> float:
    started = time.perf_counter()
    client.containers.run(image, "true", remove=True)
    return time.perf_counter() - started


def bare_cli(image: str) -> float:
    started = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", image, "true"], check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=_bench.PROJECT_ROOT / "bundles" / "toy")
    parser.add_argument("--episodes", type=int, default=15, help="measured rounds (one of each kind per round)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first")
    parser.add_argument("--no-breakdown", action="store_true", help="do not wrap evaluator functions")
    parser.add_argument("--keep-busy", action="store_true",
                        help="keep the other CPUs awake with nice-19 spinners (see _bench.KeepBusy)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)

    import docker
    client = docker.from_env(timeout=120)
    bundle = load_bundle(args.bundle)
    ref = ImageBuilder().bundle_image(bundle)
    if ref.built:
        print(f"(built {ref.tag} first)", flush=True)
    timer = PhaseTimer()
    if not args.no_breakdown:
        instrument(timer, bundle.grader_command)
    root = Path(tempfile.mkdtemp(prefix="ctxeval-bench-overhead-"))
    episodes: list[dict[str, Any]] = []
    breakdowns: list[dict[str, float]] = []
    sdk: list[float] = []
    cli: list[float] = []
    watch = _bench.Interference().__enter__()
    spinners = _bench.KeepBusy(max(1, (os.cpu_count() or 2) - 1) if args.keep_busy else 0).__enter__()
    try:
        for index in range(args.warmup + args.episodes):
            measured = index >= args.warmup
            kinds = ["episode", "sdk", "cli"]
            order = kinds if index % 2 == 0 else kinds[::-1]  # alternate so drift hits all kinds alike
            for kind in order:
                if kind == "episode":
                    timer.reset()
                    episode = run_episode_once(bundle, ref.tag, ref.input_hash, root, index)
                    phases = timer.take()
                    if measured:
                        episodes.append(episode)
                        breakdowns.append(phases)
                elif kind == "sdk":
                    seconds = bare_sdk(client, ref.tag)
                    if measured:
                        sdk.append(seconds)
                else:
                    seconds = bare_cli(ref.tag)
                    if measured:
                        cli.append(seconds)
    finally:
        spinners.__exit__()
        watch.__exit__()
        timer.undo()
        shutil.rmtree(root, ignore_errors=True)

    def column(key: str) -> list[float]:
        return [e[key] for e in episodes]

    execute_overhead = _bench.stats_ms(column("execute_overhead_s"))
    episode_overhead = _bench.stats_ms(column("episode_overhead_s"))
    grading = _bench.stats_ms(column("grading_s"))
    without_grading = _bench.stats_ms([e["execute_overhead_s"] - e["grading_s"] for e in episodes])
    bare = {"sdk": _bench.stats_ms(sdk), "cli": _bench.stats_ms(cli)}

    def ratios(stats: dict[str, Any]) -> dict[str, Any]:
        return {f"over_bare_{k}_{q}": _bench.ratio(stats[f"{q}_ms"], bare[k][f"{q}_ms"])
                for k in ("sdk", "cli") for q in ("median", "p90")}

    breakdown: dict[str, Any] = {}
    if breakdowns:
        names = sorted({name for phases in breakdowns for name in phases})
        medians = {name: statistics.median(p.get(name, 0.0) for p in breakdowns) * 1000 for name in names}
        top = {n: v for n, v in medians.items() if not n.startswith("grading.")}
        attributed = [sum(v for n, v in p.items() if not n.startswith("grading.")) for p in breakdowns]
        unattributed = [e["execute_s"] - a for e, a in zip(episodes, attributed)]
        breakdown = {
            "note": "median ms per episode; grading.* are parts of grading; unattributed = the rest of "
                    "execute (events, spans, agent construction, thread pool, ...)",
            **{n: round(v, 1) for n, v in sorted(top.items(), key=lambda kv: -kv[1])},
            "unattributed": round(statistics.median(unattributed) * 1000, 1),
            "grading_parts": {n: round(medians[n], 1) for n in names if n.startswith("grading.")},
        }
    events_median = {name: round(statistics.median(e["events"][name] for e in episodes) * 1000, 1)
                     for name in episodes[0]["events"]} if episodes else {}

    _bench.emit({
        "benchmark": "episode_overhead", "bundle": bundle.id, "image": ref.tag, "agent": "noop",
        "backend": "docker", "episodes": args.episodes, "warmup": args.warmup,
        "keep_busy_spinners": spinners.count,
        "machine": _bench.machine(), "code": _bench.code(), "interference": watch.record(),
        "episode_wall": {"execute": _bench.stats_ms(column("execute_s")),
                         "episode": _bench.stats_ms(column("episode_s")),
                         "model_ms_total": round(sum(column("model_s")) * 1000, 1),
                         "agent_sandbox_ms_total": round(sum(column("agent_sandbox_s")) * 1000, 1)},
        "overhead": {"execute": {**execute_overhead, **ratios(execute_overhead)},
                     "episode": {**episode_overhead, **ratios(episode_overhead)},
                     "grading": {**grading, **ratios(grading)},
                     "execute_without_grading": {**without_grading, **ratios(without_grading)}},
        "bare_docker_run": bare,
        "overhead_over_bare_median": _bench.ratio(execute_overhead["median_ms"], bare["sdk"]["median_ms"]),
        "overhead_over_bare_p90": _bench.ratio(execute_overhead["p90_ms"], bare["sdk"]["p90_ms"]),
        "breakdown_ms": breakdown,
        "events_phases_ms": events_median,
    }, args.out)


if __name__ == "__main__":
    main()
