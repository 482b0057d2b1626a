"""What a grade means for an episode: success and target under the bundle's success rule."""
from __future__ import annotations

from typing import Any

from ..bundles.manifest import Bundle
from ..errors import CtxevalError
from .grading import GradeOutcome


def judge(bundle: Bundle, grade: GradeOutcome, output_valid: bool) -> tuple[bool, bool]:
    """(success, target_met) under the bundle's success rule."""
    target = bundle.target
    target_met = grade.valid and target.meets_target(grade.score)
    rule = target.success.rule
    if rule in ("relative_improvement", "threshold"):
        return target_met, target_met
    if rule == "valid_output":
        return output_valid and grade.valid, target_met
    if rule == "relative_improvement_or_valid_output":
        return target_met or (output_valid and grade.valid), target_met
    if rule == "all_checks":
        checks = (grade.grade or {}).get("checks") or []
        return grade.valid and bool(checks) and all(c["passed"] for c in checks), target_met
    raise CtxevalError(f"unknown success rule {rule!r}")


def best_score(bundle: Bundle, iterations: list[dict[str, Any]], graded: float | None) -> float | None:
    """The best score the agent saw on its own iterations (e.g. cross-validation), else the grade."""
    best = None
    for value in (i["score"] for i in iterations if i.get("score") is not None):
        if best is None or bundle.target.better(value, best):
            best = value
    return graded if best is None else best
