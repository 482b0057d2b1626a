"""Whole runs with warm sandboxes against runs without them, and a bare `docker run`, interleaved in
one process. Prints JSON.

    .venv/bin/python benchmarks/reuse_run.py [--bundle toy] [--noop-episodes 20] [--bare 10]
                                             [--sweep-seeds 8] [--sweep-rounds 2] [--max-parallel 1 ...]
                                             [--out FILE]

- noop: a run of `--noop-episodes` no-op episodes (the agent submits at once: everything an
  episode costs is the evaluator's: sandbox, reset, copy-out, grading, records), with reuse and
  with --no-reuse; the cost per episode is the run's wall time over its episodes. Against it, a
  bare `docker run --rm IMAGE true` through the SDK, timed before and after each run.
- sweep: the same toy sweep (`ctxeval run toy --seeds N`, the default agent: controller mode,
  scripted hill climbing, full history) with reuse and with --no-reuse, in ABBA order: episodes
  per minute, and whether every episode's score is the same in every run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _bench

from evaluator.agents import create_agent
from evaluator.bundles import load_bundle
from evaluator.bundles.data import prepare_data
from evaluator.images import ImageBuilder
from evaluator.matrix import RunMatrix, episode_id
from evaluator.paths import BUNDLES_DIR
from evaluator.runs import EpisodeJob, RunSettings, execute_jobs, matrix_jobs, run_record


def bare_runs(client: Any, image: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        client.containers.run(image, "true", remove=True, network_mode="none")
        times.append(time.perf_counter() - started)
    return times


def timed_run(settings: RunSettings, jobs: list[EpisodeJob]) -> tuple[float, list[dict[str, Any]]]:
    started = time.perf_counter()
    results = execute_jobs(settings, run_record(settings), jobs)
    elapsed = time.perf_counter() - started
    failed = [r["episode_id"] for r in results if r["status"] != "completed"]
    if failed:
        raise SystemExit(f"episodes failed in {settings.run_id}: {failed}")
    return elapsed, results


def noop_jobs(bundle: Any, image: Any, count: int) -> list[EpisodeJob]:
    prepared = prepare_data(bundle)
    agent = create_agent("noop")
    return [EpisodeJob(bundle, seed, episode_id(bundle.id, agent.describe(), seed), lambda: agent, prepared,
                       image.tag, image.input_hash) for seed in range(count)]


def noop_part(bundle: Any, image: Any, args: argparse.Namespace, root: Path, client: Any) -> dict[str, Any]:
    bare: list[float] = []
    per_episode: dict[str, float] = {}
    reused: dict[str, int] = {}
    for reuse in (True, False):
        bare += bare_runs(client, image.tag, args.bare)
        settings = RunSettings(backend="docker", run_id=f"bench-reuse-noop-{'on' if reuse else 'off'}-{os.getpid()}",
                               root=root, reuse=reuse)
        elapsed, results = timed_run(settings, noop_jobs(bundle, image, args.noop_episodes))
        name = "reuse" if reuse else "no_reuse"
        per_episode[name] = elapsed / len(results)
        reused[name] = sum(r["sandbox"]["reused"] for r in results)
    bare += bare_runs(client, image.tag, args.bare)
    bare_median = statistics.median(bare)
    return {"episodes_per_run": args.noop_episodes, "bare_docker_run": _bench.stats_ms(bare),
            "per_episode_ms": {k: round(v * 1000, 1) for k, v in per_episode.items()},
            "episodes_in_a_reused_sandbox": reused,
            "reuse_over_bare": _bench.ratio(per_episode["reuse"], bare_median, 3),
            "no_reuse_over_bare": _bench.ratio(per_episode["no_reuse"], bare_median, 3)}


def sweep_part(bundle: Any, images: dict[str, Any], args: argparse.Namespace, root: Path,
               parallel: int) -> dict[str, Any]:
    """The sweep with and without reuse, in ABBA order over `--sweep-rounds` rounds."""
    matrix = RunMatrix.from_options([str(bundle.root)], seeds=list(range(args.sweep_seeds)))
    rates: dict[str, list[float]] = {"reuse": [], "no_reuse": []}
    reused: dict[str, list[int]] = {"reuse": [], "no_reuse": []}
    scores: dict[str, list[dict[str, Any]]] = {"reuse": [], "no_reuse": []}
    for round_ in range(args.sweep_rounds):
        order = (True, False) if round_ % 2 == 0 else (False, True)
        for reuse in order:
            name = "reuse" if reuse else "no_reuse"
            settings = RunSettings(backend="docker", run_id=f"bench-reuse-sweep-p{parallel}-{name}-{round_}-{os.getpid()}",
                                   root=root, max_parallel=parallel, reuse=reuse)
            elapsed, results = timed_run(settings, matrix_jobs(matrix, {str(bundle.root): bundle}, images))
            rates[name].append(round(len(results) / elapsed * 60, 2))
            reused[name].append(sum(r["sandbox"]["reused"] for r in results))
            scores[name].append({r["episode_id"]: r["score"] for r in results})
    median = {name: statistics.median(values) for name, values in rates.items()}
    every = scores["reuse"] + scores["no_reuse"]
    return {"episodes": args.sweep_seeds, "max_parallel": parallel, "rounds": args.sweep_rounds,
            "episodes_per_minute": rates, "episodes_per_minute_median": median,
            "episodes_in_a_reused_sandbox": reused,
            "reuse_over_no_reuse_episodes_per_minute": _bench.ratio(median["reuse"], median["no_reuse"], 3),
            "same_scores": all(run == every[0] for run in every), "scores": every[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="toy")
    parser.add_argument("--noop-episodes", type=int, default=20)
    parser.add_argument("--bare", type=int, default=10, help="bare docker runs before and after each noop run")
    parser.add_argument("--sweep-seeds", type=int, default=8)
    parser.add_argument("--sweep-rounds", type=int, default=2, help="sweep pairs, in ABBA order")
    parser.add_argument("--max-parallel", type=int, action="append", default=None,
                        help="the sweep's parallelism; repeat for several (default: 1 and 2)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    bundle = load_bundle(BUNDLES_DIR / args.bundle)
    builder = ImageBuilder()
    image = builder.bundle_image(bundle)
    images = {str(bundle.root): (image.tag, image.input_hash)}
    root = Path(tempfile.mkdtemp(prefix="ctxeval-bench-reuse-"))
    watch = _bench.Interference().__enter__()
    try:
        noop = noop_part(bundle, image, args, root, builder.client)
        sweeps = [sweep_part(bundle, images, args, root, parallel) for parallel in args.max_parallel or [1, 2]
                  if args.sweep_seeds]
    finally:
        watch.__exit__()
        shutil.rmtree(root, ignore_errors=True)
    _bench.emit({"benchmark": "reuse_run", "bundle": bundle.id, "image": image.tag, "machine": _bench.machine(),
                 "code": _bench.code(), "interference": watch.record(), "noop": noop, "sweeps": sweeps}, args.out)


if __name__ == "__main__":
    main()
