"""The experiment log of a tabular task's tool (TABULAR_OBSERVATION=full: the long variants).

What a real scikit-learn experiment script prints: the config and estimator, per-fold scores and
timings, out-of-fold diagnostics, the final fit, the top feature importances, a learning curve and
the warnings raised. A few thousand characters; deterministic for a config except the timings.
"""
from __future__ import annotations

import contextlib
import json
import platform
import re
import time
import warnings
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import sklearn
from sklearn import metrics as skm
from sklearn.inspection import permutation_importance
from sklearn.model_selection import cross_validate
from threadpoolctl import threadpool_limits

from .families import CLASSIFICATION, SEED
from .report_text import render_log
from .task import TabularTask

CURVE_FRACTIONS = (0.25, 0.5, 1.0)
PERMUTATION_REPEATS = 3
SECONDARY = {CLASSIFICATION: {"accuracy": skm.accuracy_score, "balanced_accuracy": skm.balanced_accuracy_score,
                              "macro_f1": lambda t, p: skm.f1_score(t, p, average="macro", zero_division=0)},
             "regression": {"rmse": lambda t, p: float(np.sqrt(skm.mean_squared_error(t, p))),
                            "mae": skm.mean_absolute_error, "r2": skm.r2_score}}


class ExperimentLog:
    """Runs the measured steps (cross-validation, final fit, learning curve, importances) and keeps
    what they showed for `render`."""

    def __init__(self, task: TabularTask, config: dict[str, Any], columns: list[str], dropped: list[str]):
        self.task, self.config, self.columns, self.dropped = task, config, columns, dropped
        self.caught: list[warnings.WarningMessage] = []
        self.cv: dict[str, Any] = {}
        self.folds: list[dict[str, float]] = []
        self.estimator, self.params = "", {}
        self.oof_true: list[np.ndarray] = []
        self.oof_pred: list[np.ndarray] = []
        self.fit_seconds = self.predict_seconds = self.train_score = 0.0
        self.target_train: np.ndarray = np.array([])
        self.predicted_test: np.ndarray = np.array([])
        self.curve: list[tuple[int, str, str, str]] = []
        self.importance_method = ""
        self.ranked: list[tuple[str, float, float]] = []

    @property
    def secondary(self) -> dict[str, Callable]:
        return SECONDARY[self.task.kind]

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """One thread per native library, and every warning recorded (shown in the log)."""
        with threadpool_limits(limits=1), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        self.caught = list(caught)

    def cross_validate(self, model: Any, x: np.ndarray, y: np.ndarray, folds: Any) -> np.ndarray:
        """The fold scores in the metric's sign; per-fold secondary metrics and out-of-fold predictions kept."""
        self.estimator = re.sub(r"\s+", " ", repr(model))
        self.params = (model.steps[-1][1] if hasattr(model, "steps") else model).get_params()
        self.target_train = y
        self.cv = cross_validate(model, x, y, cv=folds, scoring=self.task.metric.scorer, n_jobs=1,
                                 return_estimator=True, return_indices=True)
        for estimator, valid in zip(self.cv["estimator"], self.cv["indices"]["test"]):
            predicted = estimator.predict(x[valid])
            self.oof_true.append(y[valid])
            self.oof_pred.append(predicted)
            self.folds.append({name: float(fn(y[valid], predicted)) for name, fn in self.secondary.items()})
        return self.task.metric.cv_scores(self.cv["test_score"])

    def final_fit(self, model: Any, x: np.ndarray, y: np.ndarray) -> Any:
        start = time.perf_counter()
        model.fit(x, y)
        self.fit_seconds = time.perf_counter() - start
        self.train_score = float(self.task.metric.score(y, model.predict(x)))
        return model

    def predict(self, model: Any, x_test: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        self.predicted_test = model.predict(x_test)
        self.predict_seconds = time.perf_counter() - start
        return self.predicted_test

    def learning_curve(self, make: Callable[[], Any], x: np.ndarray, y: np.ndarray) -> None:
        """The metric on fold 1's validation rows for growing shares of its training rows (the
        full share is fold 1's own model)."""
        score = self.task.metric.score
        train_idx, valid_idx = self.cv["indices"]["train"][0], self.cv["indices"]["test"][0]
        order = np.random.default_rng(SEED).permutation(train_idx)
        for fraction in CURVE_FRACTIONS:
            rows = order[: int(round(fraction * len(order)))]
            start = time.perf_counter()
            try:
                model = self.cv["estimator"][0] if fraction == 1.0 else make().fit(x[rows], y[rows])
                seconds = self.cv["fit_time"][0] if fraction == 1.0 else time.perf_counter() - start
                train, valid = score(y[rows], model.predict(x[rows])), score(y[valid_idx], model.predict(x[valid_idx]))
            except ValueError as exc:  # e.g. more neighbours than training rows
                self.curve.append((len(rows), "n/a", "n/a", f"skipped ({str(exc)[:70]})"))
                continue
            self.curve.append((len(rows), f"{train:.4f}", f"{valid:.4f}", f"{seconds:.3f}"))

    def importances(self, model: Any, x: np.ndarray, y: np.ndarray, features: list[str]) -> None:
        """The model's own importances where it has them (trees: impurity; linear: |coefficient| on
        standardised features, summed over classes), else permutation importance on fold 1's
        validation rows."""
        last = model.steps[-1][1] if hasattr(model, "steps") else model
        spread = np.zeros(len(features))
        coef = getattr(last, "coef_", None) if getattr(last, "kernel", "linear") == "linear" else None
        if hasattr(last, "feature_importances_"):
            values, self.importance_method = np.asarray(last.feature_importances_), "impurity-based (final model)"
        elif coef is not None:
            values = np.abs(np.atleast_2d(coef)).sum(axis=0)
            self.importance_method = "|coefficient| on standardised features (final model)"
        else:
            valid = self.cv["indices"]["test"][0]
            found = permutation_importance(self.cv["estimator"][0], x[valid], y[valid], scoring=self.task.metric.scorer,
                                           n_repeats=PERMUTATION_REPEATS, random_state=SEED, n_jobs=1)
            values, spread = found.importances_mean, found.importances_std
            self.importance_method = (f"permutation, {self.task.metric.name} drop on fold 1 validation rows "
                                      f"({PERMUTATION_REPEATS} repeats)")
        order = sorted(range(len(features)), key=lambda j: (-round(float(values[j]), 12), j))
        self.ranked = [(features[j], float(values[j]), float(spread[j])) for j in order]

    def render(self, cv_score: float, cv_std: float, n_train: int, n_test: int) -> str:
        versions = (f"python {platform.python_version()} | scikit-learn {sklearn.__version__} | numpy {np.__version__} "
                    f"| pandas {pd.__version__} | threads 1")
        return render_log(self, cv_score, cv_std, n_train, n_test, versions, json.dumps(self.config, sort_keys=True))
