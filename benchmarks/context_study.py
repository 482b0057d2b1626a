"""The worked study: the context policies on a long-horizon bundle, offline, many seeds. Prints JSON.

    .venv/bin/python benchmarks/context_study.py [--bundle bundles/toy@long] [--policy P ...]
        [--seeds 10] [--max-parallel 2] [--run-id ID] [--runs-dir DIR] [--out FILE] [--no-run]
    .venv/bin/python benchmarks/context_study.py --table benchmarks/results/context_study.json

Runs the matrix `ctxeval run BUNDLE --policy P... --seeds N --max-parallel K` would run (controller
mode, scripted:hill_climb, probes on) through the same path (`matrix_jobs` then `execute_jobs`),
resumable: the same --run-id picks up finished episodes. Then reads the run back as `ctxeval
compare` does and reports, per policy: the tokens sent as a ratio to full history's, probe recall
overall, of the decisive fact and by distance bucket, the success rate with its Wilson interval,
the mean grade; and every paired comparison against full history (score: sign-flip test; success:
McNemar; probe recall: sign-flip; Holm-adjusted within this many-to-one family), and the issue's
acceptance check: `ctxeval compare --policy full_history --policy windowed --policy
structured_state` (full history beats the 6-turn window; structured state does not differ from
full history; Holm across those three pairs). The run folder also feeds
`ctxeval report` (context maps, retention curves, cost-success frontier).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import _bench
from _bench import Interference

from evaluator.analysis import stats
from evaluator.analysis.compare import compare_runs
from evaluator.analysis.loading import RunResults, arm_key, load_run
from evaluator.bundles import load_bundle
from evaluator.images import ImageBuilder
from evaluator.matrix import RunMatrix
from evaluator.runs import RunSettings, execute_jobs, matrix_jobs, run_record

PRESETS = ["long_context", "masked", "short_context", "state_tracked", "summarized", "windowed"]
POLICIES = ["full_history", "observation_masking", "llm_summary", "structured_state", "retrieval", "agent_memory",
            "memory_masking"]
REFERENCE = "full_history"
WINDOW = "windowed"  # the last 6 turns: drops the leak fact planted at call 2
KEEPER = "structured_state"  # keeps stated facts and constraints as notes
MODEL = "scripted:hill_climb"


def run_study(bundle_path: str, policies: list[str], seeds: int, parallel: int, run_id: str,
              runs_dir: Path | None) -> Path:
    bundle = load_bundle(bundle_path)
    image = ImageBuilder().bundle_image(bundle)
    matrix = RunMatrix.from_options([bundle_path], policies=policies, modes=["controller"], models=[MODEL],
                                    seeds=list(range(seeds)))
    settings = RunSettings(backend="docker", run_id=run_id, root=runs_dir, max_parallel=parallel, probes=True)
    images = {bundle_path: (image.tag, image.input_hash)}
    jobs = matrix_jobs(matrix, {bundle_path: bundle}, images)
    record = run_record(settings, matrix=matrix.as_record(),
                        images={bundle.id: {"image": image.tag, "image_hash": image.input_hash}},
                        bundles={bundle.id: {"version": bundle.version, "path": str(bundle.root)}})
    execute_jobs(settings, record, jobs)
    return settings.run_dir


def policy_rows(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    arms = {arm["arm"]["policy"]: arm for arm in document["arms"]}
    reference_tokens = (arms.get(REFERENCE) or {}).get("total_tokens", {}).get("estimate")
    rows = {}
    for policy, arm in sorted(arms.items()):
        tokens = arm["total_tokens"]["estimate"]
        recall = arm.get("probe_recall") or {}
        rows[policy] = {
            "episodes": arm["n"], "successes": arm["successes"], "success_rate": arm["success_rate"],
            "mean_score": arm["score"], "mean_total_tokens": tokens,
            "tokens_vs_full_history": _bench.ratio(tokens, reference_tokens, 3) if reference_tokens else None,
            "probe_recall": recall.get("overall"), "decisive_recall": recall.get("decisive"),
            "recall_by_distance": recall.get("by_distance"), "stop_reasons": arm["stop_reasons"],
        }
    return rows


def against_reference(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every policy against full history, Holm-adjusted within this family (one comparison per other
    policy: a many-to-one design), from the raw p-values of the all-pairs document."""
    picked = []
    for c in document["comparisons"]:
        if REFERENCE not in (c["policy_a"], c["policy_b"]):
            continue
        other = c["policy_b"] if c["policy_a"] == REFERENCE else c["policy_a"]
        recall = c.get("probe_recall") or {}
        picked.append({"policy": other, "policy_a": c["policy_a"], "policy_b": c["policy_b"], "pairs": c["pairs"],
                       "successes_a": c["successes_a"], "successes_b": c["successes_b"], "success_p": c["success_p"],
                       "score_difference": c["score_difference"], "score_p": c["score_p"],
                       "probe_recall_difference": recall.get("difference"), "probe_recall_p": recall.get("p")})
    for test in ("success_p", "score_p", "probe_recall_p"):
        for row, adjusted in zip(picked, stats.holm_adjust([row[test] for row in picked])):
            row[f"{test}_adjusted"] = adjusted
    return picked


def acceptance(run: RunResults) -> dict[str, Any] | None:
    """`ctxeval compare RUN --policy full_history --policy windowed --policy structured_state`: the
    issue's acceptance check (full history beats the window; structured state does not differ)."""
    wanted = [REFERENCE, WINDOW, KEEPER]
    if not set(wanted) <= {arm_key(r).policy for r in run.results}:
        return None
    document = compare_runs([run], wanted)
    found = {frozenset((c["policy_a"], c["policy_b"])): c for c in document["comparisons"]}
    window, keeper = found[frozenset((REFERENCE, WINDOW))], found[frozenset((REFERENCE, KEEPER))]
    return {"command": f"ctxeval compare {run.run_dir} " + " ".join(f"--policy {p}" for p in wanted),
            "full_history_vs_window": _verdict(window), "full_history_vs_structured_state": _verdict(keeper),
            "full_history_beats_window": window["significant"] and window["better"] == REFERENCE,
            "structured_state_not_different": not keeper["significant"]}


def _verdict(c: dict[str, Any]) -> dict[str, Any]:
    return {k: c[k] for k in ("policy_a", "policy_b", "pairs", "successes_a", "successes_b", "success_p_adjusted",
                              "score_difference", "score_p_adjusted", "better", "significant")}


def _interval(record: dict[str, Any] | None, digits: int = 2) -> str:
    if not record or record.get("estimate") is None:
        return "–"
    return f"{record['estimate']:.{digits}f} [{record['low']:.{digits}f}, {record['high']:.{digits}f}]"


def _recall(block: dict[str, Any] | None) -> dict[str, Any] | None:
    """A recall figure's interval, from a pooled tally ({answered, correct, recall}) or an interval."""
    return (block or {}).get("recall", block) if isinstance(block, dict) else None


def markdown_table(study: dict[str, Any]) -> str:
    """The README's table of a study document: one row per policy, full history first."""
    against = {row["policy"]: row for row in study["against_full_history"]}
    lines = ["| policy | tokens vs full history | probe recall | decisive fact recall | success rate (95% CI) "
             "| mean score | score p vs full history (Holm) |", "|---|---|---|---|---|---|---|"]
    order = sorted(study["policies"], key=lambda p: (p != REFERENCE, p))
    for policy in order:
        row, vs = study["policies"][policy], against.get(policy, {})
        p = vs.get("score_p_adjusted")
        lines.append(f"| `{policy}` | {row['tokens_vs_full_history'] if row['tokens_vs_full_history'] is not None else '–'} "
                     f"| {_interval(_recall(row['probe_recall']))} | {_interval(_recall(row['decisive_recall']))} "
                     f"| {row['successes']}/{row['episodes']} · {_interval(row['success_rate'])} "
                     f"| {_interval(row['mean_score'], 3)} | {'–' if p is None else f'{p:.4f}'} |")
    return "\n".join(lines)


def _sandbox_seconds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-episode sandbox and wall seconds of the run's finished episodes (the study's cost)."""
    sandbox = [r["metrics"]["sandbox_seconds"] for r in results]
    wall = [r["metrics"]["wall_seconds"] for r in results]
    return {"episodes": len(results), "sandbox_total": round(sum(sandbox), 1),
            "sandbox_median": round(_bench.percentile(sandbox, 0.5), 1) if sandbox else None,
            "wall_median": round(_bench.percentile(wall, 0.5), 1) if wall else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default="bundles/toy@long")
    parser.add_argument("--policy", action="append", help="repeat; default: every preset and 7 policies")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--max-parallel", type=int, default=2)
    parser.add_argument("--run-id", default="context-study")
    parser.add_argument("--runs-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-run", action="store_true", help="report on the run's finished episodes, run nothing")
    parser.add_argument("--table", type=Path, default=None, help="print the Markdown table of a study JSON and exit")
    args = parser.parse_args()
    if args.table is not None:
        print(markdown_table(json.loads(args.table.read_text())))
        return
    policies = args.policy or [*POLICIES, *PRESETS]
    with Interference() as watch:
        started = time.monotonic()
        if args.no_run:  # the finished episodes of an earlier (possibly interrupted) study run
            run_dir = RunSettings(backend="docker", run_id=args.run_id, root=args.runs_dir).run_dir
        else:
            run_dir = run_study(args.bundle, policies, args.seeds, args.max_parallel, args.run_id, args.runs_dir)
        seconds = time.monotonic() - started
    run = load_run(run_dir)
    document = compare_runs([run])
    _bench.emit({
        "benchmark": "context_study", "bundle": args.bundle, "mode": "controller", "model": MODEL,
        "seeds": len({r["seed"] for r in run.results}), "max_parallel": args.max_parallel, "run_dir": str(run_dir),
        "command": f"ctxeval run {args.bundle} " + " ".join(f"--policy {p}" for p in policies)
                   + f" --seeds {args.seeds} --max-parallel {args.max_parallel}",
        "wall_seconds": None if args.no_run else round(seconds, 1),
        "sandbox_seconds": _sandbox_seconds(run.results), "alpha": document["alpha"], "correction": document["correction"],
        "policies": policy_rows(document), "against_full_history": against_reference(document),
        "acceptance": acceptance(run),
        "machine": _bench.machine(), "code": _bench.code(), "interference": watch.record(),
    }, args.out)


if __name__ == "__main__":
    main()
