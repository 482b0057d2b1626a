"""Episodes per minute at several --max-parallel settings on one bundle, side by side. Prints JSON.

    .venv/bin/python benchmarks/throughput.py [--bundle toy] [--episodes 4] [--parallel 1 2 4]
                                              [--rounds 2] [--max-steps N] [--via api|cli] [--out FILE]

For each parallelism P the same matrix (one bundle, the default agent: controller mode,
scripted:hill_climb, full_history; seeds 0..N-1) runs into a fresh run folder, through the same
path `ctxeval run toy --seeds N --max-parallel P` takes: `evaluator.runs.matrix_jobs` then
`execute_jobs` (--via api, the default), or the command itself in a subprocess (--via cli,
which adds the CLI's start and image check to every run). Episodes/min = N / run wall time x 60;
the speed-up is against P=1. The settings run --rounds times in alternating order (1 2 4 4 2 1
...) and the medians are reported, so that drift (e.g. steal time on a shared host) does not land
on one setting only.

Also per P: host CPU in cores over the run (busy, steal, the containers' share, the evaluator
process's, the rest: see CpuMeter), the median episode wall time,
the sum of episode wall times over the run's wall time (how many episodes were effectively in
flight), and whether every seed scored the same as at P=1 (the scripted agent is deterministic:
contention must change the time, never the result).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import _bench
from _bench import KeepBusy

from evaluator.bundles import load_bundle
from evaluator.episode.context import Budget
from evaluator.images import ImageBuilder
from evaluator.matrix import RunMatrix
from evaluator.runs import RunSettings, execute_jobs, matrix_jobs, run_record

CONTROL = "1_busy_vm"


DOCKER_CPUACCT = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")  # cgroup v1: all containers, hierarchical


class CpuMeter:
    """Host CPU over an interval, in cores (CPU-seconds per second): busy (user, nice, system, irq,
    softirq), steal (taken by the hypervisor), the containers' own (cgroup v1 cpuacct of docker/,
    when present), this process and its waited-for children (the evaluator), and the rest (dockerd,
    containerd, shims, fuse-overlayfs, kernel threads, anything else running)."""

    @staticmethod
    def _sample() -> dict[str, float]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        times = os.times()
        sample = {"busy": (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / hz,
                  "steal": (fields[7] if len(fields) > 7 else 0) / hz,
                  "evaluator": times.user + times.system + times.children_user + times.children_system,
                  "wall": time.monotonic()}
        if DOCKER_CPUACCT.exists():
            sample["containers"] = int(DOCKER_CPUACCT.read_text()) / 1e9
        return sample

    def __enter__(self) -> "CpuMeter":
        self.start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        wall = end["wall"] - self.start["wall"]
        self.cores = {k: (end[k] - self.start[k]) / wall for k in end if k != "wall" and k in self.start}
        if "containers" in self.cores:
            self.cores["other_host"] = self.cores["busy"] - self.cores["containers"] - self.cores["evaluator"]


def run_api(bundle_name: str, bundle: Any, image: tuple[str, str], seeds: list[int], parallel: int,
            root: Path, run_id: str, max_steps: int | None) -> list[dict[str, Any]]:
    matrix = RunMatrix.from_options([bundle_name], seeds=seeds)
    settings = RunSettings(backend="docker", root=root, run_id=run_id, max_parallel=parallel,
                           budget=Budget(max_steps=max_steps))
    images = {bundle_name: image}
    jobs = matrix_jobs(matrix, {bundle_name: bundle}, images)
    record = run_record(settings, matrix=matrix.as_record(),
                        images={bundle_name: {"image": image[0], "image_hash": image[1]}},
                        bundles={bundle.id: {"version": bundle.version, "path": str(bundle.root)}})
    return execute_jobs(settings, record, jobs)


def run_cli(bundle_name: str, seeds: list[int], parallel: int, root: Path, run_id: str,
            max_steps: int | None) -> list[dict[str, Any]]:
    command = [str(_bench.PROJECT_ROOT / ".venv" / "bin" / "ctxeval"), "run", bundle_name, "--seeds", str(len(seeds)),
               "--max-parallel", str(parallel), "--backend", "docker", "--runs-dir", str(root), "--run-id", run_id]
    if max_steps:
        command += ["--max-steps", str(max_steps)]
    env = {k: v for k, v in os.environ.items() if k != "PHOENIX_COLLECTOR_ENDPOINT"}
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=_bench.PROJECT_ROOT)
    episodes = root / run_id / "episodes"
    return [json.loads((d / "result.json").read_text()) for d in sorted(episodes.iterdir())]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="toy", help="a bundle id under bundles/ (or a folder)")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per run (seeds 0..N-1), the same for every P")
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=2, help="runs per P (alternating order)")
    parser.add_argument("--max-steps", type=int, default=None, help="step budget (default: the bundle's)")
    parser.add_argument("--via", choices=["api", "cli"], default="api")
    parser.add_argument("--no-control", action="store_true",
                        help="skip the control: P=1 with the other CPUs kept awake by nice-19 spinners")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if 1 not in args.parallel:
        parser.error("--parallel must include 1 (the speed-ups are against P=1)")

    path = Path(args.bundle)
    bundle_name = args.bundle
    if path.exists():
        bundle_name = str(path.resolve())
    else:
        path = _bench.PROJECT_ROOT / "bundles" / args.bundle
    bundle = load_bundle(path)
    ref = ImageBuilder().bundle_image(bundle)
    seeds = list(range(args.episodes))
    root = Path(tempfile.mkdtemp(prefix="ctxeval-bench-throughput-"))
    settings: list[str] = [str(p) for p in args.parallel] + ([] if args.no_control else [CONTROL])
    order: list[str] = []
    for r in range(args.rounds):
        order += settings if r % 2 == 0 else settings[::-1]
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in settings}
    spinners = max(1, (os.cpu_count() or 2) - 1)
    watch = _bench.Interference().__enter__()
    try:
        for index, label in enumerate(order):
            parallel = 1 if label == CONTROL else int(label)
            run_id = f"bench-throughput-{label}-{index}"
            with KeepBusy(spinners if label == CONTROL else 0), CpuMeter() as cpu:
                started = time.perf_counter()
                if args.via == "api":
                    results = run_api(bundle_name, bundle, (ref.tag, ref.input_hash), seeds, parallel, root, run_id,
                                      args.max_steps)
                else:
                    results = run_cli(bundle_name, seeds, parallel, root, run_id, args.max_steps)
                wall = time.perf_counter() - started
            errors = [r["error"] for r in results if r["status"] != "completed"]
            if errors:
                raise SystemExit(f"{label}: {len(errors)} episodes failed: {errors[0]}")
            episode_walls = [r["metrics"]["wall_seconds"] for r in results]
            runs[label].append({
                "wall_s": wall,
                "cpu_cores": cpu.cores,
                "episode_wall_median_s": statistics.median(episode_walls),
                "in_flight": sum(episode_walls) / wall,
                "model_s": sum(r["metrics"]["model_seconds"] for r in results),
                "sandbox_s": sum(r["metrics"]["sandbox_seconds"] for r in results),
                "steps": sum(r["metrics"]["steps"] for r in results),
                "successes": sum(r["success"] for r in results),
                "scores": {r["seed"]: r["score"] for r in results},
            })
            shutil.rmtree(root / run_id, ignore_errors=True)
    finally:
        watch.__exit__()
        shutil.rmtree(root, ignore_errors=True)

    def median(p: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[p])

    base_rate = args.episodes / median("1", "wall_s") * 60
    control_rate = args.episodes / median(CONTROL, "wall_s") * 60 if CONTROL in runs else None
    reference_scores = runs["1"][0]["scores"]
    per_p = {}
    for p in settings:
        rate = args.episodes / median(p, "wall_s") * 60
        parallel = 1 if p == CONTROL else int(p)
        per_p[p] = {
            "wall_s": round(median(p, "wall_s"), 2), "episodes_per_min": round(rate, 2),
            "speedup_vs_p1": round(rate / base_rate, 2), "efficiency": round(rate / base_rate / parallel, 2),
            **({"speedup_vs_p1_busy_vm": round(rate / control_rate, 2)} if control_rate else {}),
            "cpu_cores": {k: round(statistics.median(run["cpu_cores"][k] for run in runs[p]), 2)
                          for k in runs[p][0]["cpu_cores"]},
            "episode_wall_median_s": round(median(p, "episode_wall_median_s"), 2),
            "episodes_in_flight": round(median(p, "in_flight"), 2),
            "sandbox_s_per_episode": round(median(p, "sandbox_s") / args.episodes, 2),
            "model_s_per_episode": round(median(p, "model_s") / args.episodes, 3),
            "steps": runs[p][0]["steps"], "successes": runs[p][0]["successes"],
            "scores_match_p1": all(run["scores"] == reference_scores for run in runs[p]),
            "runs": len(runs[p]),
            "wall_s_each": [round(run["wall_s"], 2) for run in runs[p]],
            "steal_cores_each": [round(run["cpu_cores"]["steal"], 2) for run in runs[p]],
        }
    _bench.emit({
        "benchmark": "throughput", "bundle": bundle.id, "image": ref.tag,
        "agent": {"mode": "controller", "model": "scripted:hill_climb", "policy": "full_history"},
        "via": args.via, "episodes_per_run": args.episodes, "rounds": args.rounds, "order": order,
        "max_steps": args.max_steps, "bundle_limits": {"cpus_per_container": bundle.limits.cpus,
                                                        "memory_mb": bundle.limits.memory_mb},
        "machine": _bench.machine(), "code": _bench.code(), "interference": watch.record(),
        "control": None if args.no_control else
        f"{CONTROL}: P=1 with {spinners} nice-19 spinner(s) keeping the other CPU(s) awake",
        "parallelism": per_p,
        "speedups_vs_p1": {p: per_p[p]["speedup_vs_p1"] for p in settings},
        **({"speedups_vs_p1_busy_vm": {p: per_p[p]["speedup_vs_p1_busy_vm"] for p in settings}}
           if control_rate else {}),
    }, args.out)


if __name__ == "__main__":
    main()
