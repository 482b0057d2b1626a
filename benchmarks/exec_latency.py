"""One command's round trip: the sandbox's channel vs the engine's exec, on the same container,
interleaved in one run. Prints JSON.

    .venv/bin/python benchmarks/exec_latency.py [--bundle bundles/toy] [--rounds 100] [--settle-ms 20] [--out FILE]

Each round times, in turn:
- channel: `sandbox.exec("true")` over PID 1's stream (bash -c true as the agent, with the timeout,
  output cap, group kill and counters of every exec);
- sdk_exec_true: an SDK `docker exec` of `true` as the agent's uid (exec_create + exec_start: the
  engine's bare minimum, with none of ctxeval's limits);
- sdk_exec_bash: an SDK `docker exec` of `bash -c true` as the agent's uid (the same command the
  channel runs);
- plain: `sandbox.exec("true")` with the channel switched off (ctxeval's fallback: one `docker exec`
  of the exec helper per command).
Each call is timed after the same short pause (--settle-ms): an SDK exec leaves work behind for
the engine (dockerd and containerd-shim clean up after it has returned) that would otherwise be
charged to whichever call comes next on this 2-core machine.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import _bench

from evaluator.bundles import load_bundle
from evaluator.bundles.data import prepare_data
from evaluator.episode.limits import agent_limits
from evaluator.images import ImageBuilder
from evaluator.sandbox import SandboxSpec, create_sandbox
from evaluator.sandbox.defaults import AGENT_UID
from evaluator.sandbox.outcomes import ExecOutcome

AGENT = f"{AGENT_UID}:{AGENT_UID}"


def timed(call: Callable[[], object], settle_seconds: float) -> float:
    time.sleep(settle_seconds)
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path(__file__).resolve().parents[1] / "bundles" / "toy")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--settle-ms", type=float, default=20.0, help="pause before each timed call")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    image = ImageBuilder().bundle_image(bundle).tag
    prepared = prepare_data(bundle)
    spec = SandboxSpec(image=image, limits=agent_limits(bundle), labels={"ctxeval.run": "bench-exec"},
                       tools_dir=bundle.tools_dir, data_dir=prepared.public)
    sandbox = create_sandbox("docker", spec)
    times: dict[str, list[float]] = {"channel": [], "sdk_exec_true": [], "sdk_exec_bash": [], "plain": []}
    watch = _bench.Interference().__enter__()
    sandbox.start()
    try:
        api, container = sandbox.client.api, sandbox.container.id

        def sdk(argv: list[str]) -> None:
            api.exec_start(api.exec_create(container, argv, user=AGENT)["Id"])

        def ctxeval_exec(channel: bool) -> None:
            sandbox.channel_usable = channel
            if sandbox.exec("true").outcome != ExecOutcome.OK:
                raise SystemExit("exec of `true` failed")

        for _ in range(3):  # warm-up, not counted
            ctxeval_exec(True), ctxeval_exec(False), sdk(["true"])
        settle = args.settle_ms / 1000
        for _ in range(args.rounds):
            times["channel"].append(timed(lambda: ctxeval_exec(True), settle))
            times["sdk_exec_true"].append(timed(lambda: sdk(["true"]), settle))
            times["sdk_exec_bash"].append(timed(lambda: sdk(["bash", "-c", "true"]), settle))
            times["plain"].append(timed(lambda: ctxeval_exec(False), settle))
        fallbacks = [e for e in sandbox.events if e["event"] == "channel_fallback"]
    finally:
        sandbox.stop()
        watch.__exit__()
    stats = {name: _bench.stats_ms(values, digits=2) for name, values in times.items()}
    channel = stats["channel"]["median_ms"]
    _bench.emit({
        "benchmark": "exec_latency", "bundle": bundle.id, "image": image, "rounds": args.rounds, "settle_ms": args.settle_ms,
        "machine": _bench.machine(), "code": _bench.code(), "interference": watch.record(),
        **stats, "channel_fallbacks": len(fallbacks),
        "channel_over_sdk_exec_true_median": _bench.ratio(channel, stats["sdk_exec_true"]["median_ms"], 3),
        "channel_over_sdk_exec_bash_median": _bench.ratio(channel, stats["sdk_exec_bash"]["median_ms"], 3),
        "channel_over_plain_median": _bench.ratio(channel, stats["plain"]["median_ms"], 3),
    }, args.out)


if __name__ == "__main__":
    main()
