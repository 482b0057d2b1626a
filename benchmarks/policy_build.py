"""How long each context policy takes to build a context, and how big that context is.

For a seeded 200-turn synthetic agentic episode (policies/synthetic.py), for every registered
policy: the median build time over several repetitions, cold (a fresh instance given the whole
history: stateful policies do all their work at once) and warm (the instance already built the
199-turn prefix, as during an episode), the context's tokens and their ratio to full history's.
Prints one JSON document. Not a test: nothing here asserts on time.

    .venv/bin/python benchmarks/policy_build.py [--turns 200] [--seed 0] [--repeats 7] [--budget N] [--mode agentic]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies import POLICIES, PolicyInput, create_policy, synthetic  # noqa: E402
from policies.base import group_turns, messages_tokens  # noqa: E402


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def measure(name: str, preamble, history, budget: int | None, repeats: int) -> dict:
    turns = group_turns(history)
    prefix = [m for t in turns[:-1] for m in t]
    cold, warm, built = [], [], None
    for _ in range(repeats):
        policy = create_policy(name)
        started = time.perf_counter()
        built = policy.build(PolicyInput(preamble, history, budget))
        cold.append(time.perf_counter() - started)
        policy = create_policy(name)
        policy.build(PolicyInput(preamble, prefix, budget))
        started = time.perf_counter()
        policy.build(PolicyInput(preamble, history, budget))
        warm.append(time.perf_counter() - started)
    return {"build_ms_cold": _ms(statistics.median(cold)), "build_ms_warm": _ms(statistics.median(warm)),
            "context_tokens": built.tokens, "ratio_to_full": round(built.tokens / built.full_tokens, 4),
            "messages": len(built.messages), "dropped_turns": built.dropped_turns,
            "summarizer_calls_cold": len(built.summarizer_calls), "params": create_policy(name).params()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--budget", type=int, default=None, help="request budget in tokens (default: none)")
    parser.add_argument("--mode", choices=["agentic", "controller"], default="agentic")
    args = parser.parse_args(argv)
    preamble, history = synthetic.episode(args.turns, seed=args.seed, mode=args.mode)
    create_policy("retrieval").build(PolicyInput(preamble, history[:4]))  # import rank_bm25 outside the timings
    results = {name: measure(name, preamble, history, args.budget, args.repeats) for name in POLICIES}
    full = results["full_history"]
    print(json.dumps({
        "benchmark": "policy_build",
        "history": {"mode": args.mode, "turns": args.turns, "seed": args.seed, "messages": len(history),
                    "preamble_tokens": messages_tokens(preamble),
                    "full_tokens": messages_tokens([*preamble, *history])},
        "budget_tokens": args.budget, "repeats": args.repeats, "token_counter": "policies.base.count_tokens",
        "python": platform.python_version(),
        "full_history": {"build_ms_cold": full["build_ms_cold"], "context_tokens": full["context_tokens"]},
        "policies": results,
    }, indent=2))


if __name__ == "__main__":
    main()
