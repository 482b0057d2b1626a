"""task.md (a short ctxeval preamble, then the competition's description.md) and README.md of an
imported bundle."""
from __future__ import annotations

from pathlib import Path

from .plan import SUBMISSION_FILE, BundlePlan


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _public_files(plan: BundlePlan) -> str:
    names = sorted(plan.competition.checksums.get("public", {}))
    return ", ".join(f"`{n}`" for n in names) or "the competition's public files"


def preamble(plan: BundlePlan) -> str:
    c, m = plan.competition, plan.medals
    better = "lower" if m.lower_is_better else "higher"
    at_least = "at most" if m.lower_is_better else "at least"
    return "\n".join([
        f"# {c.name}",
        "",
        f"*ctxeval: this is the MLE-bench competition `{c.id}`. Its own description comes after these "
        "rules; where the two differ (file locations, how to submit), these rules apply.*",
        "",
        f"- **Data** (read-only, in `$CTXEVAL_DATA`): the competition's public files as MLE-bench "
        f"prepares them ({_public_files(plan)}). The test answers are hidden. There is no internet access.",
        "- **Workspace** (`$CTXEVAL_WORKSPACE`, the current directory): `python3 make_submission.py` "
        f"copies `{c.sample_submission}` to `{SUBMISSION_FILE}`: a valid submission with a weak score.",
        f"- **Submission**: `{SUBMISSION_FILE}` in the workspace, in the format of `{c.sample_submission}` "
        "(one row per test id, the same columns; `context.json` in the data says whether rows are matched "
        "by id or by position), and `metrics.json` "
        '(`{"submission": "submission.csv", "validation_score": <your held-out estimate or null>, '
        '"notes": "..."}`). What is in the workspace when you finish is graded.',
        f"- **Grading**: the competition's own `{c.grader_name}` metric ({better} is better) on the hidden "
        "test answers; an unusable file is graded invalid with the reason.",
        f"- **Success**: a score {at_least} {_fmt(plan.threshold)}, the {plan.success_level} threshold of "
        f"Kaggle's leaderboard ({m.teams} teams; gold {_fmt(m.gold)}, silver {_fmt(m.silver)}, "
        f"bronze {_fmt(m.bronze)}, median {_fmt(m.median)}).",
        "",
        "---",
        "",
    ])


def task_text(plan: BundlePlan) -> str:
    description = plan.competition.files.description.read_text(encoding="utf-8")
    return preamble(plan) + description.rstrip() + "\n"


def _listing(files: list[Path], folder: str) -> list[str]:
    return [f"  - `{folder}/mlebench_src/{f.as_posix()}`" for f in files]


def readme_text(plan: BundlePlan) -> str:
    c, m = plan.competition, plan.medals
    lines = [
        f"# Bundle `{plan.bundle_id}`: MLE-bench competition `{c.id}`",
        "",
        f"Written by `ctxeval import mlebench {c.id} --from {c.files.checkout}`. Re-run it with `--force` "
        "to refresh; do not edit the copied sources.",
        "",
        "- Data: `ctxeval data fetch BUNDLE" + ("` (from Kaggle, or `--from DIR`)" if plan.kaggle else " --from DIR`")
        + f" puts the raw files ({', '.join(plan.raw_files)}) in ctxeval's cache; `ctxeval data prepare` runs "
        "`data/prepare.py` (ctxeval's), which calls the competition's `prepare(raw, public, private)` and "
        "checks `data/checksums.yaml` (the competition's, except its `zip` entry).",
        f"- Grading: `grader/grade.py` (ctxeval's) reads `{SUBMISSION_FILE}` and `private/{c.answers}` "
        f"with pandas and calls `{c.grade_fn}`; its InvalidSubmissionError (or any other exception, as "
        "MLE-bench counts it) is an invalid grade with the message as the reason.",
        f"- Success: score {'<=' if m.lower_is_better else '>='} {_fmt(plan.threshold)} "
        f"({plan.success_level}). Medal thresholds (MLE-bench's rule over `competition/leaderboard.csv`, "
        f"{m.teams} teams): gold {_fmt(m.gold)}, silver {_fmt(m.silver)}, bronze {_fmt(m.bronze)}, "
        f"median {_fmt(m.median)}; in `bundle.yaml` under `target.medals`.",
        "- Reference: " + (f"`reference/` (from --reference), run with `{plan.reference_command}`."
                           if plan.reference else "none (MLE-bench has none): `ctxeval check` needs one "
                                                  "(`--reference DIR` at import)."),
        "",
        "Copied from the checkout (empty `__init__.py` files added where it has none):",
        "  - `competition/`: config.yaml, description.md, leaderboard.csv, checksums.yaml",
        *_listing(plan.grade_sources.relative(), "grader"),
        *_listing(plan.prepare_sources.relative(), "data"),
    ]
    if plan.stub_modules:
        lines += ["", "Placeholders when absent (imported at module level by mlebench helpers, unused by "
                      f"grading): {', '.join(plan.stub_modules)}."]
    if plan.missing_libraries:
        lines += ["", f"Libraries the competition's code imports that ctxeval's base image lacks: "
                      f"{', '.join(plan.missing_libraries)} (add them to the Dockerfile)."]
    return "\n".join(lines) + "\n"
