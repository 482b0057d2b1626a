"""The metrics a tabular task is graded by: the same function scores cross-validation folds and
the hidden test set, so the tool's `cv_<metric>` estimates the grade."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn import metrics

from .families import CLASSIFICATION, REGRESSION


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # the task kind it applies to
    direction: str  # "maximize" or "minimize"
    score: Callable[[np.ndarray, np.ndarray], float]  # (truth, prediction) -> score
    summary: str

    @property
    def scorer(self) -> Callable:
        """A scikit-learn scorer (greater is better) for cross_validate."""
        return metrics.make_scorer(self.score, greater_is_better=self.direction == "maximize")

    def cv_scores(self, raw: np.ndarray) -> np.ndarray:
        """Fold scores in the metric's own sign (scikit-learn negates what is minimised)."""
        return np.asarray(raw) * (1 if self.direction == "maximize" else -1)


def _rmse(truth: np.ndarray, prediction: np.ndarray) -> float:
    return float(np.sqrt(metrics.mean_squared_error(truth, prediction)))


METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", CLASSIFICATION, "maximize", metrics.accuracy_score,
                       "the share of test rows whose class is predicted right"),
    "balanced_accuracy": Metric("balanced_accuracy", CLASSIFICATION, "maximize", metrics.balanced_accuracy_score,
                                "the mean of the per-class recalls: predicting only the majority class scores 0.5"),
    "rmse": Metric("rmse", REGRESSION, "minimize", _rmse, "root mean squared error of the predicted target"),
}
