#!/usr/bin/env python3
"""Data stage of a bundle imported from MLE-bench (written by `ctxeval import mlebench`).

Usage: python data/prepare.py --raw RAW_DIR --out OUT_DIR [--no-verify]

Runs the competition's own prepare(raw, public, private) (copied from the user's MLE-bench checkout
into data/mlebench_src/) on the raw files, exactly as `mlebench prepare` does: OUT/public/ becomes the
agent's read-only data, OUT/private/ the grader's answers; public/description.md gets the
competition's description, as MLE-bench writes it. Then the md5 of every csv/json/jsonl/parquet/bson
file directly under public/ and private/ must equal data/checksums.yaml (the competition's
checksums.yaml, copied at import time; its `zip` entry is not checked: the raw files arrive
unpacked). Prints nothing unless it fails; a failure is one line naming the file at fault.

Last, public/context.json says how the competition's grade function matches submission rows to the
answers (`row_alignment`): "id" when it scores its own answers, given as a submission in reversed
row order, exactly as in their order; "position" when it then scores them worse or refuses them;
"unknown" when the answers cannot stand in for a submission. MLE-bench leaves this to each
competition; the agent and `clarify` read it here.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # the copied modules are imported from the bundle folder: leave it as written
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ctxeval_mlebench as mle  # noqa: E402

CHECKSUMS_FILE = "checksums.yaml"
DESCRIPTION_FILE = "description.md"
CONTEXT_FILE = "context.json"


class PrepareError(Exception):
    """A clear, one-line reason why the data could not be prepared."""


def run_prepare(competition: dict, raw: Path, out: Path) -> None:
    if not raw.is_dir():
        raise PrepareError(f"raw data folder {raw} does not exist: run `ctxeval data fetch` first")
    public, private = out / "public", out / "private"
    for folder in (public, private):
        folder.mkdir(parents=True, exist_ok=True)
    try:
        prepare = mle.load_function(HERE / mle.SOURCE_DIR, competition["preparer"], competition["stub_modules"])
    except Exception as exc:  # noqa: BLE001 - any import failure, named with the copied file
        raise PrepareError(f"cannot import {competition['preparer']} from data/{mle.SOURCE_DIR}: "
                           f"{type(exc).__name__}: {exc}") from None
    try:
        prepare(raw=raw, public=public, private=private)
    except Exception as exc:  # noqa: BLE001 - the competition's code failed on these raw files
        raise PrepareError(f"the competition's prepare ({competition['preparer']}) failed on {raw}: "
                           f"{type(exc).__name__}: {exc}") from None
    description = HERE / DESCRIPTION_FILE
    if description.is_file():
        (public / DESCRIPTION_FILE).write_text(description.read_text())


def verify(out: Path) -> None:
    import yaml
    path = HERE / CHECKSUMS_FILE
    try:
        expected = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PrepareError(f"{path}: cannot read the competition's checksums: {exc}") from None
    problems = mle.checksum_problems(expected, out)
    if problems:
        raise PrepareError(f"{path}: the prepared files differ from the competition's checksums.yaml: "
                           + "; ".join(problems) + " -- are the raw files the competition's originals? "
                           "(--no-verify keeps them anyway)")


def row_alignment(competition: dict, out: Path) -> str:
    """How the grade function matches rows: "id", "position" or "unknown" (see the module's docstring)."""
    import pandas as pd
    answers_path = out / "private" / competition["answers"]
    sample_path = out / "public" / competition["sample_submission"]
    if answers_path.suffix != ".csv" or not sample_path.is_file():
        return "unknown"
    answers = pd.read_csv(answers_path)
    columns = list(pd.read_csv(sample_path, nrows=0).columns)
    if len(answers) < 2 or not set(columns) <= set(answers.columns):
        return "unknown"
    grade = mle.load_function(HERE.parent / "grader" / mle.SOURCE_DIR, competition["grade_fn"],
                              competition["stub_modules"])
    submission = answers[columns]
    try:
        in_order = grade(submission.copy(), answers.copy())
    except Exception:  # noqa: BLE001 - its own answers refused: nothing to learn from the reversed ones
        return "unknown"
    try:
        reversed_order = grade(submission.iloc[::-1].reset_index(drop=True), answers.copy())
    except Exception:  # noqa: BLE001 - refused only when reordered: rows are matched by position
        return "position"
    return "id" if reversed_order == in_order else "position"


def write_context(competition: dict, out: Path) -> None:
    alignment = row_alignment(competition, out)
    notes = {"id": "rows are matched to the answers by id: their order does not matter",
             "position": f"rows are matched by position: keep the order of {competition['sample_submission']}",
             "unknown": f"keep the rows in the order of {competition['sample_submission']} to be safe"}
    context = {"competition": competition["competition_id"], "metric": competition["metric"],
               "submission": competition["submission"], "row_alignment": alignment, "note": notes[alignment]}
    (out / "public" / CONTEXT_FILE).write_text(json.dumps(context, indent=2) + "\n")


def make_readable(out: Path) -> None:
    for folder, _, files in os.walk(out):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, type=Path, help="folder holding the competition's raw files")
    parser.add_argument("--out", required=True, type=Path, help="output folder (public/ and private/ are created)")
    parser.add_argument("--no-verify", action="store_true", help="do not check checksums.yaml")
    args = parser.parse_args(argv)
    try:
        run_prepare(mle.read_competition(HERE), args.raw, args.out)
        if not args.no_verify:
            verify(args.out)
        write_context(mle.read_competition(HERE), args.out)
        make_readable(args.out)
    except PrepareError as exc:
        print(f"prepare.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
