"""Kaggle medal thresholds from a competition's leaderboard, by MLE-bench's rule.

MLE-bench (mlebench/grade_helpers.py, Grader.rank_score) follows Kaggle's progression rules over
the rows of leaderboard.csv, in file order (Kaggle's private-leaderboard ranking), with N teams:

    N < 100:         gold = position max(1, int(0.1 N)),   silver max(1, int(0.2 N)),  bronze max(1, int(0.4 N))
    100 <= N < 250:  gold = position 10,                   silver max(1, int(0.2 N)),  bronze max(1, int(0.4 N))
    250 <= N < 1000: gold = position 10 + int(0.002 N),    silver 50,                  bronze 100
    N >= 1000:       gold = position 10 + int(0.002 N),    silver max(1, int(0.05 N)), bronze max(1, int(0.1 N))

A threshold is the score at that (1-based) position; the median threshold is the median of all
scores. Lower is better when the first row's score is below the last row's (Grader.is_lower_better).
"""
from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import ValidationFailed, Violation

SCORE_COLUMN = "score"
LEVELS = ("gold", "silver", "bronze", "median")


@dataclass(frozen=True)
class MedalThresholds:
    gold: float
    silver: float
    bronze: float
    median: float
    teams: int
    lower_is_better: bool

    @property
    def direction(self) -> str:
        return "minimize" if self.lower_is_better else "maximize"

    def level(self, name: str) -> float:
        return {"gold": self.gold, "silver": self.silver, "bronze": self.bronze, "median": self.median}[name]

    def as_dict(self) -> dict[str, float | int | bool]:
        return {"gold": self.gold, "silver": self.silver, "bronze": self.bronze, "median": self.median,
                "teams": self.teams, "lower_is_better": self.lower_is_better}


def medal_positions(teams: int) -> tuple[int, int, int]:
    """The 1-based leaderboard positions of the gold, silver and bronze thresholds for `teams` teams."""
    if teams < 1:
        raise ValueError("a leaderboard needs at least one team")
    if teams < 100:
        return max(1, int(teams * 0.1)), max(1, int(teams * 0.2)), max(1, int(teams * 0.4))
    if teams < 250:
        return 10, max(1, int(teams * 0.2)), max(1, int(teams * 0.4))
    gold = 10 + int(teams * 0.002)
    if teams < 1000:
        return gold, 50, 100
    return gold, max(1, int(teams * 0.05)), max(1, int(teams * 0.1))


def thresholds(scores: list[float]) -> MedalThresholds:
    """The thresholds for a leaderboard's scores, in leaderboard order."""
    positions = medal_positions(len(scores))
    gold, silver, bronze = (float(scores[p - 1]) for p in positions)
    return MedalThresholds(gold=gold, silver=silver, bronze=bronze, median=float(statistics.median(scores)),
                           teams=len(scores), lower_is_better=bool(scores[0] < scores[-1]))


def read_scores(path: Path) -> list[float]:
    """The score column of leaderboard.csv, in file order; ValidationFailed naming the file and row."""
    label = str(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if SCORE_COLUMN not in (reader.fieldnames or []):
                raise ValidationFailed([Violation(label, "$", f"no {SCORE_COLUMN!r} column (columns: "
                                                              f"{', '.join(reader.fieldnames or []) or 'none'})")])
            cells = [row[SCORE_COLUMN] for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValidationFailed([Violation(label, "$", f"cannot read the leaderboard: {exc}")]) from None
    scores, found = [], []
    for i, cell in enumerate(cells):
        try:
            value = float(cell)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            found.append(Violation(label, f"$[{i}].{SCORE_COLUMN}", f"not a finite number: {cell!r} (data row {i + 1})"))
        scores.append(value)
    if not cells:
        found.append(Violation(label, "$", "the leaderboard has no rows"))
    if found:
        raise ValidationFailed(found)
    return scores


def leaderboard_thresholds(path: Path) -> MedalThresholds:
    return thresholds(read_scores(path))
