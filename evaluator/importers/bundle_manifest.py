"""bundle.yaml of an imported MLE-bench competition (valid under evaluator/schemas/bundle.schema.json).

Success is the `threshold` rule at the chosen medal level's threshold (bronze by default: "any
medal", MLE-bench's headline figure); every threshold is recorded under `target.medals`, and each
grade's details say which medal the score earns. There is no baseline: the starter's score (the
sample submission's) is only known once the data is prepared.
"""
from __future__ import annotations

from typing import Any

from .plan import SUBMISSION_FILE, BundlePlan

VERSION = "1.0.0"
GRADER_COMMAND = 'python3 "$CTXEVAL_GRADER/grade.py"'
LIMITS = {"max_steps": 50, "wall_seconds": 3600, "exec_timeout_seconds": 900, "output_bytes": 65536,
          "cpus": 1.0, "memory_mb": 4096, "pids": 256, "tmpfs_mb": 512}


def _description(plan: BundlePlan) -> str:
    c, medals = plan.competition, plan.medals
    better = "lower" if medals.lower_is_better else "higher"
    return (f"MLE-bench competition {c.id} ({c.name}, {c.competition_type}), imported from an MLE-bench "
            f"checkout by `ctxeval import mlebench`: data prepared by the competition's own prepare.py "
            f"(checksums verified), {SUBMISSION_FILE} graded by its own grade function ({c.grader_name}, "
            f"{better} is better). Success: a score at least as good as the {plan.success_level} "
            f"threshold of Kaggle's leaderboard ({medals.teams} teams) by MLE-bench's medal rule.")


def _workspace(plan: BundlePlan) -> dict[str, Any]:
    workspace: dict[str, Any] = {"starter": "starter"}
    if plan.reference is not None:
        workspace.update(reference="reference", reference_command=plan.reference_command)
    return workspace


def _data(plan: BundlePlan) -> dict[str, Any]:
    fetch: dict[str, Any] = {"files": list(plan.raw_files)}
    if plan.kaggle:
        fetch = {"kaggle": plan.kaggle, **fetch}
    return {"fetch": fetch, "prepare": ["data/prepare.py", "--raw", "{raw}", "--out", "{out}"],
            "public": "public", "private": "private", "context": "context.json"}


def _target(plan: BundlePlan) -> dict[str, Any]:
    medals = {**plan.medals.as_dict(), "success_level": plan.success_level,
              "source": "competition/leaderboard.csv"}
    return {"metric": plan.competition.grader_name, "direction": plan.medals.direction, "baseline": None,
            "success": {"rule": "threshold", "threshold": plan.threshold}, "medals": medals}


def manifest(plan: BundlePlan) -> dict[str, Any]:
    """The manifest document, in the key order bundles/ use."""
    return {
        "schema_version": 1,
        "id": plan.bundle_id,
        "version": VERSION,
        "title": f"{plan.competition.name} (MLE-bench: {plan.competition.id})",
        "description": _description(plan),
        "task": "task.md",
        "image": {"dockerfile": "Dockerfile", "context": ["Dockerfile"]},
        "workspace": _workspace(plan),
        "data": _data(plan),
        "grader": {"command": GRADER_COMMAND, "submission": SUBMISSION_FILE,
                   "executes_submission": False, "timeout_seconds": 600},
        "output": {"path": "metrics.json", "schema": "output.schema.json"},
        "target": _target(plan),
        "limits": dict(LIMITS),
    }


def manifest_text(plan: BundlePlan) -> str:
    import yaml
    header = (f"# Imported from MLE-bench by `ctxeval import mlebench {plan.competition.id}`; see README.md.\n"
              "# target.medals: Kaggle's medal thresholds by MLE-bench's rule (informational; success is\n"
              "# target.success). Re-run the import (with --force) rather than editing the copied sources.\n")
    return header + yaml.safe_dump(manifest(plan), sort_keys=False, allow_unicode=True, width=100)
