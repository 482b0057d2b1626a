"""Warm reset vs a fresh container, side by side in one run. Prints JSON.

    .venv/bin/python benchmarks/reset_latency.py [--bundle bundles/toy] [--warm 30] [--fresh 10]

Warm: one started sandbox, `reset()` restores the starter, clears /tmp and kills processes.
Fresh: create the container and its volume, start, reset (restore the starter), stop and remove.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from evaluator.bundles import load_bundle
from evaluator.bundles.data import prepare_data
from evaluator.episode.runner import agent_limits
from evaluator.images import ImageBuilder
from evaluator.sandbox import SandboxSpec, create_sandbox


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 1), "p95_ms": round(percentile(ms, 0.95), 1),
            "min_ms": round(min(ms), 1), "max_ms": round(max(ms), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path(__file__).resolve().parents[1] / "bundles" / "toy")
    parser.add_argument("--warm", type=int, default=30)
    parser.add_argument("--fresh", type=int, default=10)
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    image = ImageBuilder().bundle_image(bundle).tag
    prepared = prepare_data(bundle)

    def spec() -> SandboxSpec:
        return SandboxSpec(image=image, limits=agent_limits(bundle), labels={"ctxeval.run": "bench-reset"},
                           tools_dir=bundle.tools_dir, data_dir=prepared.public)

    warm_times, fresh_times = [], []
    sandbox = create_sandbox("docker", spec())
    sandbox.start()
    try:
        for _ in range(args.warm):
            sandbox.exec("echo dirt > dirt.txt; echo t > /tmp/t; (sleep 100 &) ; true")
            started = time.perf_counter()
            sandbox.reset(bundle.starter_dir)
            warm_times.append(time.perf_counter() - started)
    finally:
        sandbox.stop()
    for _ in range(args.fresh):
        started = time.perf_counter()
        fresh = create_sandbox("docker", spec())
        fresh.start()
        fresh.reset(bundle.starter_dir)
        fresh.stop()
        fresh_times.append(time.perf_counter() - started)
    warm, fresh = summary(warm_times), summary(fresh_times)
    print(json.dumps({
        "benchmark": "reset_latency", "bundle": bundle.id, "image": image,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": __import__("os").cpu_count()},
        "warm_reset": warm, "fresh_container": fresh,
        "fresh_over_warm_median": round(fresh["median_ms"] / warm["median_ms"], 2),
        "fresh_over_warm_p95": round(fresh["p95_ms"] / warm["p95_ms"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
