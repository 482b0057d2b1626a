"""`ctxeval --help` start time against a bare `python -c pass` of the same interpreter, side by side. Prints JSON.

    .venv/bin/python benchmarks/cli_start.py [--repeats 20] [--importtime-repeats 5] [--top 12] [--out FILE]

Timed as subprocesses, interleaved round by round (order alternating), each to exit:
  * `python -c pass`                      the interpreter's own start (site, the venv's .pth files)
  * `python -c "import evaluator.cli"`    the CLI module's import
  * `ctxeval --help`                      the console script, as a user runs it
Medians, p90 and the ratios to `python -c pass`.

Then `python -X importtime` (medians over several runs) for `import evaluator.cli` and for
`ctxeval --help` as a whole: the total, the heaviest top-level imports (cumulative, i.e. with
what they pull in) and the heaviest single modules (self time).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import _bench

VENV_BIN = _bench.PROJECT_ROOT / ".venv" / "bin"


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                   cwd=_bench.PROJECT_ROOT)
    return time.perf_counter() - started


def importtime(argv: list[str], env: dict[str, str]) -> list[dict[str, Any]]:
    """The import tree of one run: top-level nodes {name, self_us, cumulative_us, children}."""
    run = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                         cwd=_bench.PROJECT_ROOT, check=True)
    pending: list[tuple[int, dict[str, Any]]] = []  # importtime prints children before their parent
    for line in run.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|", 2)
        level = (len(name) - len(name.lstrip(" ")) - 1) // 2
        children = []
        while pending and pending[-1][0] > level:
            children.insert(0, pending.pop()[1])
        pending.append((level, {"name": name.strip(), "self_us": int(self_us),
                                "cumulative_us": int(cumulative_us), "children": children}))
    return [node for _, node in pending]


def _walk(nodes: list[dict[str, Any]]):
    for node in nodes:
        yield node
        yield from _walk(node["children"])


def import_profile(argv: list[str], env: dict[str, str], repeats: int, top: int, expand: int) -> dict[str, Any]:
    """Medians over runs: the total, the heaviest top-level imports and, for the `expand` heaviest
    of them, their heaviest direct imports; the heaviest modules by self time."""
    cumulative: dict[str, list[int]] = defaultdict(list)
    own: dict[str, list[int]] = defaultdict(list)
    children: dict[str, set[str]] = defaultdict(set)
    top_level: set[str] = set()
    totals: list[int] = []
    for _ in range(repeats):
        roots = importtime(argv, env)
        totals.append(sum(node["cumulative_us"] for node in roots))
        top_level.update(node["name"] for node in roots)
        for node in _walk(roots):
            cumulative[node["name"]].append(node["cumulative_us"])
            own[node["name"]].append(node["self_us"])
            children[node["name"]].update(child["name"] for child in node["children"])

    def ms(values: list[int]) -> float:
        return round(statistics.median(values) / 1000, 2)

    def heaviest(names: set[str] | list[str], by: dict[str, list[int]]) -> list[str]:
        return sorted(names, key=lambda n: -statistics.median(by[n]))

    roots_sorted = heaviest(top_level, cumulative)
    return {
        "runs": repeats, "modules_imported": len(cumulative),
        "all_imports_ms": round(statistics.median(totals) / 1000, 2),
        "top_level_cumulative_ms": {n: ms(cumulative[n]) for n in roots_sorted[:top]},
        "direct_imports_cumulative_ms": {
            root: {n: ms(cumulative[n]) for n in heaviest(children[root], cumulative)[:top]}
            for root in roots_sorted[:expand] if children[root]},
        "heaviest_self_ms": {n: ms(own[n]) for n in heaviest(list(own), own)[:top]},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of each command")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured rounds first (page cache, .pyc)")
    parser.add_argument("--importtime-repeats", type=int, default=5)
    parser.add_argument("--top", type=int, default=12, help="how many imports to list")
    parser.add_argument("--python", default=str(VENV_BIN / "python"), help="the interpreter (default: the venv's)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)

    python = args.python
    ctxeval = str(Path(python).with_name("ctxeval"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["COLUMNS"] = "100"
    commands = {
        "python_pass": [python, "-c", "pass"],
        "import_evaluator_cli": [python, "-c", "import evaluator.cli"],
        "ctxeval_help": [ctxeval, "--help"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    watch = _bench.Interference().__enter__()
    for index in range(args.warmup + args.repeats):
        names = list(commands) if index % 2 == 0 else list(commands)[::-1]
        for name in names:
            seconds = timed(commands[name], env)
            if index >= args.warmup:
                times[name].append(seconds)
    stats = {name: _bench.stats_ms(values) for name, values in times.items()}
    bare = stats["python_pass"]

    def against_bare(name: str) -> dict[str, Any]:
        return {**stats[name], "minus_python_pass_median_ms": round(stats[name]["median_ms"] - bare["median_ms"], 1),
                "over_python_pass_median": _bench.ratio(stats[name]["median_ms"], bare["median_ms"]),
                "over_python_pass_p90": _bench.ratio(stats[name]["p90_ms"], bare["p90_ms"])}

    profiles = {
        "import_evaluator_cli": import_profile([python, "-X", "importtime", "-c", "import evaluator.cli"], env,
                                               args.importtime_repeats, args.top, 2),
        "ctxeval_help": import_profile([python, "-X", "importtime", ctxeval, "--help"], env,
                                       args.importtime_repeats, args.top, 3),
    }
    watch.__exit__()
    _bench.emit({
        "benchmark": "cli_start", "python": python, "ctxeval": ctxeval, "repeats": args.repeats,
        "warmup": args.warmup, "machine": _bench.machine(), "code": _bench.code(), "interference": watch.record(),
        "python_pass": bare,
        "import_evaluator_cli": against_bare("import_evaluator_cli"),
        "ctxeval_help": against_bare("ctxeval_help"),
        "help_over_python_pass_median": _bench.ratio(stats["ctxeval_help"]["median_ms"], bare["median_ms"]),
        "importtime": {
            "note": "python -X importtime, median over runs; cumulative = with everything it imported",
            **profiles,
        },
    }, args.out)


if __name__ == "__main__":
    if sys.flags.ignore_environment:
        raise SystemExit("run without -E")
    main()
