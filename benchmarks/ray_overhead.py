"""The same sweep with the local executor and with Ray on this machine, interleaved. Prints JSON.

    .venv/bin/python benchmarks/ray_overhead.py [--bundle toy] [--seeds 8] [--max-steps 4]
                                                [--max-parallel 2] [--rounds 2] [--out FILE]

Each round runs `ctxeval run toy --seeds N` (controller mode, scripted hill climbing, full history)
once per executor, in ABBA order across rounds: `local` (threads, the default, with its warm
sandboxes) and `ray` (tasks on a one-node Ray cluster on this machine offering --max-parallel
`ctxeval_sandbox` slots, started once before the rounds as a real cluster would be: `ray start
--head`, timed on its own as ray_start_s). Ray's time includes joining the cluster, shipping the
bundle, its workers' start and each episode folder's way back; its added cost per episode is
(ray − local) / N, as a fraction of local's time per episode. Also: whether every episode's score
is the same in every run.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _bench

from evaluator.bundles import load_bundle
from evaluator.episode.context import Budget
from evaluator.images import ImageBuilder
from evaluator.matrix import RunMatrix
from evaluator.paths import BUNDLES_DIR
from evaluator.runs import RunSettings, execute_jobs, matrix_jobs, run_record

EXECUTORS = ("local", "ray")


def start_cluster(slots: int, port: int) -> tuple[subprocess.Popen, float]:
    """A one-node Ray cluster (`ray start --head --block`, its own session) offering `slots`."""
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)})  # before Ray is imported
    started = time.perf_counter()
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}",
                             "--include-dashboard=false", "--disable-usage-stats",
                             f"--resources={json.dumps({'ctxeval_sandbox': slots})}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    probe = f"import ray; ray.init(address='127.0.0.1:{port}', log_to_driver=False, configure_logging=False)"
    while subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode != 0:
        if head.poll() is not None:
            raise SystemExit("ray start --head failed")
        time.sleep(0.5)
    return head, time.perf_counter() - started


def stop_cluster(head: subprocess.Popen) -> None:
    listing = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True).stdout.split("\n")
    for line in listing:
        fields = line.split()
        if len(fields) == 2 and fields[1] == str(head.pid):
            try:
                os.kill(int(fields[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass
    head.wait()


def one_run(executor: str, round_number: int, args: argparse.Namespace, root: Path) -> tuple[float, dict[str, Any]]:
    bundle = load_bundle(BUNDLES_DIR / args.bundle)
    ref = ImageBuilder().bundle_image(bundle)
    matrix = RunMatrix.from_options([args.bundle], seeds=list(range(args.seeds)))
    jobs = matrix_jobs(matrix, {args.bundle: bundle}, {args.bundle: (ref.tag, ref.input_hash)})
    settings = RunSettings(backend="docker", run_id=f"bench-ray-{executor}-{round_number}-{os.getpid()}", root=root,
                           budget=Budget(max_steps=args.max_steps), max_parallel=args.max_parallel, executor=executor,
                           ray_address=f"127.0.0.1:{args.ray_port}" if executor == "ray" else None)
    started = time.perf_counter()
    results = execute_jobs(settings, run_record(settings, matrix=matrix.as_record()), jobs)
    elapsed = time.perf_counter() - started
    failed = [r["episode_id"] for r in results if r["status"] != "completed"]
    if failed:
        raise SystemExit(f"episodes failed in {settings.run_id}: {failed}")
    return elapsed, {r["episode_id"]: r["score"] for r in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="toy")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--max-parallel", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ray-port", type=int, default=26500)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ctxeval-bench-ray-"))
    times: dict[str, list[float]] = {name: [] for name in EXECUTORS}
    scores: list[dict[str, Any]] = []
    head, ray_start = start_cluster(args.max_parallel, args.ray_port)
    watch = _bench.Interference().__enter__()
    try:
        for round_number in range(args.rounds):
            order = EXECUTORS if round_number % 2 == 0 else tuple(reversed(EXECUTORS))
            for executor in order:
                elapsed, run_scores = one_run(executor, round_number, args, root)
                times[executor].append(elapsed)
                scores.append(run_scores)
    finally:
        watch.__exit__()
        stop_cluster(head)
        shutil.rmtree(root, ignore_errors=True)
    per_episode = {name: statistics.median(values) / args.seeds for name, values in times.items()}
    added = per_episode["ray"] - per_episode["local"]
    _bench.emit({
        "benchmark": "ray_overhead", "bundle": args.bundle, "episodes": args.seeds, "max_steps": args.max_steps,
        "max_parallel": args.max_parallel, "rounds": args.rounds, "machine": _bench.machine(), "code": _bench.code(),
        "interference": watch.record(), "ray_start_s": round(ray_start, 2),
        "run_seconds": {name: [round(v, 2) for v in values] for name, values in times.items()},
        "per_episode_s": {name: round(value, 3) for name, value in per_episode.items()},
        "ray_added_per_episode_s": round(added, 3),
        "ray_added_fraction": _bench.ratio(added, per_episode["local"], 3),
        "same_scores_in_every_run": all(s == scores[0] for s in scores),
    }, args.out)


if __name__ == "__main__":
    main()
