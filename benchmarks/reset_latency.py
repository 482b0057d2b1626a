"""Warm reset vs a fresh container, side by side in one run. Prints JSON.

    .venv/bin/python benchmarks/reset_latency.py [--bundle bundles/toy] [--warm 30] [--fresh 10]
                                                 [--keep-busy] [--out FILE]

Warm: one started sandbox, `reset()` restores the starter, clears /tmp and kills processes.
Fresh: create the container and its volume, start, reset (restore the starter), stop and remove.
--keep-busy: the same with the other CPU(s) kept awake by nice-19 spinners (see _bench.KeepBusy).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import _bench

from evaluator.bundles import load_bundle
from evaluator.bundles.data import prepare_data
from evaluator.episode.limits import agent_limits
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
    parser.add_argument("--keep-busy", action="store_true", help="keep the other CPUs awake (nice-19 spinners)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    image = ImageBuilder().bundle_image(bundle).tag
    prepared = prepare_data(bundle)

    def spec() -> SandboxSpec:
        return SandboxSpec(image=image, limits=agent_limits(bundle), labels={"ctxeval.run": "bench-reset"},
                           tools_dir=bundle.tools_dir, data_dir=prepared.public)

    warm_times, fresh_times = [], []
    watch = _bench.Interference().__enter__()
    spinners = _bench.KeepBusy(max(1, (os.cpu_count() or 2) - 1) if args.keep_busy else 0).__enter__()
    try:
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
    finally:
        spinners.__exit__()
        watch.__exit__()
    warm, fresh = summary(warm_times), summary(fresh_times)
    _bench.emit({
        "benchmark": "reset_latency", "bundle": bundle.id, "image": image,
        "keep_busy_spinners": spinners.count, "machine": _bench.machine(), "code": _bench.code(),
        "interference": watch.record(),
        "warm_reset": warm, "fresh_container": fresh,
        "fresh_over_warm_median": round(fresh["median_ms"] / warm["median_ms"], 2),
        "fresh_over_warm_p95": round(fresh["p95_ms"] / warm["p95_ms"], 2),
    }, args.out)


if __name__ == "__main__":
    main()
