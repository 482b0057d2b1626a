"""One grade: a warm grading sandbox vs a fresh grading container, per bundle, interleaved in one
run on the same artefacts. Prints JSON.

    .venv/bin/python benchmarks/grading_latency.py [--bundle toy --bundle nomad] [--rounds 10]
                                                   [--nomad-raw ../shared/data/nomad2018] [--out FILE]

Fresh: `grade_artefacts` as an episode without reuse calls it (create, start, fill, run the
grader, read grade.json, stop, remove). Warm: the same call with the run's grading pool (the first
grade, which starts the sandbox, is a warm-up and not counted): kill, wipe, place the artefacts,
run the grader in a fresh process, read grade.json. The artefacts are the bundle's starter with a
valid submission (the sample or a constant prediction), so the grader does its whole work.
"""
from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

import _bench

from evaluator.bundles import load_bundle
from evaluator.bundles.data import prepare_data
from evaluator.bundles.fetch import fetch_raw, missing_raw_files
from evaluator.episode.grading import grade_artefacts
from evaluator.images import ImageBuilder
from evaluator.paths import BUNDLES_DIR, PROJECT_ROOT
from evaluator.sandbox.pool import SandboxPool

DEFAULT_NOMAD_RAW = PROJECT_ROOT.parent / "shared" / "data" / "nomad2018"


def artefacts(bundle, public: Path, folder: Path) -> Path:
    """The starter plus a valid submission under the name the grader reads."""
    shutil.copytree(bundle.starter_dir, folder, dirs_exist_ok=True)
    sample = public / "sample_submission.csv"
    if sample.is_file():
        shutil.copy(sample, folder / bundle.grader_submission)
        return folder
    with open(public / "test.csv") as handle:
        ids = [row["id"] for row in csv.DictReader(handle)]
    (folder / bundle.grader_submission).write_text("id,target\n" + "".join(f"{i},0\n" for i in ids))
    return folder


def measure(name: str, rounds: int, raw: Path | None, scratch: Path) -> dict:
    bundle = load_bundle(BUNDLES_DIR / name)
    if missing_raw_files(bundle):
        if raw is None or not raw.is_dir():
            return {"bundle": name, "skipped": "its raw data is not here (--nomad-raw)"}
        fetch_raw(bundle, raw)
    prepared = prepare_data(bundle)
    image = ImageBuilder().bundle_image(bundle).tag
    folder = artefacts(bundle, prepared.public, scratch / name)
    labels = {"ctxeval.run": "bench-grading"}
    pool = SandboxPool(max_episodes=rounds + 2)
    fresh, warm, grades = [], [], set()
    try:
        grade_artefacts(bundle, "docker", image, folder, prepared, labels, pool=pool)  # starts the warm one
        for _ in range(rounds):
            for kind, times, given in (("fresh", fresh, None), ("warm", warm, pool)):
                started = time.perf_counter()
                outcome = grade_artefacts(bundle, "docker", image, folder, prepared, labels, pool=given)
                times.append(time.perf_counter() - started)
                if not outcome.valid:
                    raise SystemExit(f"{name}: the {kind} grade is not valid: {outcome.errors or outcome.grade}")
                grades.add(outcome.score)
    finally:
        pool.close()
    stats = {"fresh_container": _bench.stats_ms(fresh), "warm_sandbox": _bench.stats_ms(warm)}
    return {"bundle": name, "image": image, **stats, "warm_sandboxes_started": pool.started,
            "scores_seen": sorted(grades),
            "warm_over_fresh_median": _bench.ratio(stats["warm_sandbox"]["median_ms"],
                                                   stats["fresh_container"]["median_ms"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", action="append", default=None, help="toy, nomad (default: both)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--nomad-raw", type=Path, default=DEFAULT_NOMAD_RAW)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ctxeval-bench-grading-"))
    watch = _bench.Interference().__enter__()
    try:
        bundles = [measure(name, args.rounds, args.nomad_raw, scratch) for name in args.bundle or ["toy", "nomad"]]
    finally:
        watch.__exit__()
        shutil.rmtree(scratch, ignore_errors=True)
    _bench.emit({"benchmark": "grading_latency", "rounds": args.rounds, "machine": _bench.machine(),
                 "code": _bench.code(), "interference": watch.record(), "bundles": bundles}, args.out)


if __name__ == "__main__":
    main()
