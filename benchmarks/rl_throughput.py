"""RL throughput on toy: resets + steps per second of 1, 2 and 4 vectorised environments (warm
sandboxes, Gymnasium's AsyncVectorEnv) against a fresh container per episode, in one run. Prints JSON.

    .venv/bin/python benchmarks/rl_throughput.py [--episodes 12] [--steps 4] [--sizes 1,2,4] [--out FILE]

An episode is one reset and `--steps` steps of `exec true` (the environment's own cost: no
training, no grading). Vectorised: `gymnasium.make_vec("ctxeval/toy-v0", num_envs=N,
vectorization_mode="async")`, made and reset once before the clock starts, then `--episodes`
episodes per environment (every reset restores the starter and checks its digest). Fresh: for
each of `--episodes` episodes a new BundleEnv (its container started at reset), the same steps,
then close() (container removed). Operations per second = (resets + steps) / wall seconds.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _bench
import gymnasium

import evaluator.rl  # noqa: F401 - registers ctxeval/*
from evaluator.bundles.registry import bundle_registry
from evaluator.images import ImageBuilder
from evaluator.rl import BundleEnv

ACTION = json.dumps({"name": "exec", "arguments": {"command": "true"}})


def vectorised(size: int, episodes: int, steps: int, image: str) -> dict:
    envs = gymnasium.make_vec("ctxeval/toy-v0", num_envs=size, vectorization_mode="async", image=image)
    try:
        envs.reset(seed=list(range(size)))  # containers started: not timed
        started = time.perf_counter()
        for episode in range(episodes):
            envs.reset(seed=[episode * size + i for i in range(size)])
            for _ in range(steps):
                envs.step([ACTION] * size)
        seconds = time.perf_counter() - started
    finally:
        envs.close()
    operations = size * episodes * (1 + steps)
    return {"num_envs": size, "episodes": size * episodes, "operations": operations, "seconds": round(seconds, 3),
            "ops_per_second": round(operations / seconds, 2)}


def fresh(episodes: int, steps: int, image: str) -> dict:
    bundle = bundle_registry().load("toy")
    started = time.perf_counter()
    for episode in range(episodes):
        with BundleEnv(bundle, image=image) as env:
            env.reset(seed=episode)
            for _ in range(steps):
                env.step(ACTION)
    seconds = time.perf_counter() - started
    operations = episodes * (1 + steps)
    return {"episodes": episodes, "operations": operations, "seconds": round(seconds, 3),
            "ops_per_second": round(operations / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=12, help="episodes per environment")
    parser.add_argument("--steps", type=int, default=4, help="steps per episode")
    parser.add_argument("--sizes", default="1,2,4", help="numbers of vectorised environments")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    image = ImageBuilder().bundle_image(bundle_registry().load("toy")).tag
    sizes = [int(s) for s in args.sizes.split(",")]
    watch = _bench.Interference().__enter__()
    try:
        baseline = fresh(args.episodes, args.steps, image)
        results = [vectorised(size, args.episodes, args.steps, image) for size in sizes]
    finally:
        watch.__exit__()
    for result in results:
        result["over_fresh"] = _bench.ratio(result["ops_per_second"], baseline["ops_per_second"])
    _bench.emit({"benchmark": "rl_throughput", "bundle": "toy", "image": image, "steps_per_episode": args.steps,
                 "action": json.loads(ACTION), "machine": _bench.machine(), "code": _bench.code(),
                 "interference": watch.record(), "fresh_container_per_episode": baseline, "vectorised_async": results},
                args.out)


if __name__ == "__main__":
    main()
