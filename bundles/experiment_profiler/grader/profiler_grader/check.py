"""The check stage: the 15 checks, computed from the run stage's results (never running the
submission), and grade.json."""

from __future__ import annotations

from typing import Any, Callable

import ctxeval_grading as grading

from . import cli_checks, run_checks
from .common import METRIC, PACKAGE, GraderError
from .context import Context, load_context

Check = Callable[[Context], "str | None"]
CHECKS: tuple[tuple[str, Check], ...] = (
    ("package_imports", cli_checks.check_imports),
    ("cli_commands", cli_checks.check_cli_commands),
    ("run_command", run_checks.check_run_command),
    ("summary_written", run_checks.check_summary_written),
    ("runs_selected", run_checks.check_runs_selected),
    ("execution_order", run_checks.check_execution_order),
    ("requests_logged", run_checks.check_requests_logged),
    ("responses_logged", run_checks.check_responses_logged),
    ("metrics_match", run_checks.check_metrics_match),
    ("run_metrics_match", run_checks.check_run_metrics_match),
    ("refusal_case_refused", run_checks.check_refusal),
    ("summarize_plain_fallback", cli_checks.check_summarize_plain),
    ("summarize_uses_rich", cli_checks.check_summarize_rich),
    ("second_manifest", cli_checks.check_second_manifest),
    ("invalid_config_rejected", cli_checks.check_invalid_config),
)
CHECK_NAMES = tuple(name for name, _ in CHECKS)


def run_check(ctx: Context, name: str, fn: Check) -> dict[str, Any]:
    """One check: fn returns None when it passes, else the reason it fails."""
    try:
        reason = fn(ctx)
    except GraderError:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed submission output must not crash grading
        reason = f"could not be checked: {type(exc).__name__}: {exc}"
    return {"name": name, "passed": reason is None, "reason": reason}


def grade() -> dict[str, Any]:
    ctx = load_context()
    checks = [run_check(ctx, name, fn) for name, fn in CHECKS]
    passed = sum(c["passed"] for c in checks)
    failed = [c["name"] for c in checks if not c["passed"]]
    reason = f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}" if failed else None
    details = {"checks_passed": passed, "checks_total": len(checks),
               "expected_metrics": {k: round(v, 6) for k, v in ctx.expected.metrics.items()},
               "workspace_has_package": (ctx.workspace / PACKAGE / "__init__.py").is_file(),
               "commands": {name: r.outcome if r.ran else "not_run" for name, r in ctx.results.items()}}
    return grading.make_grade(METRIC, True, round(passed / len(checks), 6), reason, details, checks=checks)


def main() -> int:
    grading.env_path("CTXEVAL_OUTPUT")  # before any work: without it nothing can be graded
    grading.write_grade(grade())
    return 0
