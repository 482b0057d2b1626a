#!/usr/bin/env python3
"""Data stage of the experiment_profiler bundle: publish the manifests and the dialogue data.

Usage: python data/prepare.py --out DIR

Copies the bundle's configs/ to DIR/public/configs/, data/*.json (dialogues.json,
mock_responses.json) to DIR/public/, output.schema.json to DIR/public/summary.schema.json and
writes DIR/public/context.json (the dataset context `clarify` answers from). Everything here is
public: the grader recomputes its expectations from these same files, so there is no private data.
Folders are chmod 755, files 644. Prints nothing unless it fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1]


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def write_context(public: Path) -> None:
    dialogues = json.loads((public / "dialogues.json").read_text())["dialogues"]
    context = {
        "task": "finish the experiment_profiler package: run YAML experiment manifests against the dialogues, "
                "log every request/response as JSONL, compute metrics, summarize them as a table",
        "files": {
            "configs/sample_experiment.yaml": "the sample experiment manifest (the grader runs it)",
            "dialogues.json": "the evaluation prompts: id, system, user, required_facts, expect_refusal",
            "mock_responses.json": "the canned responses the simulated client returns, by prompt id",
            "summary.schema.json": "JSON Schema of summary.json",
        },
        "dialogues": {d["id"]: {"required_facts": d["required_facts"], "expect_refusal": d["expect_refusal"]}
                      for d in dialogues},
        "notes": ["there is no network and no ANTHROPIC_API_KEY: the client simulates responses",
                  "rich is not installed in the sandbox: summarize must fall back to a plain ASCII table"],
    }
    (public / "context.json").write_text(json.dumps(context, indent=2) + "\n")


def prepare(out: Path) -> None:
    public = out / "public"
    for config in sorted((BUNDLE / "configs").rglob("*")):
        if config.is_file():
            _copy(config, public / "configs" / config.relative_to(BUNDLE / "configs"))
    for data in sorted((BUNDLE / "data").glob("*.json")):
        _copy(data, public / data.name)
    _copy(BUNDLE / "output.schema.json", public / "summary.schema.json")
    write_context(public)
    for dirpath, _dirnames, filenames in os.walk(out):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    args = parser.parse_args(argv)
    try:
        prepare(args.out)
    except Exception as exc:  # noqa: BLE001 - report any failure as one clear line
        print(f"prepare.py: error: could not write the data to {args.out}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
