"""The experiment log of the toy tool (TOY_OBSERVATION=full, the `toy@long` variant).

What a real scikit-learn experiment script prints: the config and estimator, per-fold scores
and timings, the final fit, the top feature importances, the warnings raised and a learning
curve. About 3,500-4,500 characters; deterministic for a config except the timings.
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
from sklearn.inspection import permutation_importance
from sklearn.metrics import classification_report, confusion_matrix
from sklearn.model_selection import cross_validate
from threadpoolctl import threadpool_limits

SEED = 0
TOP_FEATURES = 20
CURVE_FRACTIONS = (0.25, 0.5, 1.0)
PERMUTATION_REPEATS = 3
MAX_WARNINGS = 4  # distinct warnings shown
WARNING_CHARS = 220
SCORING = {"accuracy": "accuracy", "f1": "f1", "roc_auc": "roc_auc"}
RULE = "-" * 72


class ExperimentLog:
    """Runs the measured steps (cross-validation, final fit, learning curve, importances) and
    renders what they showed."""

    def __init__(self, config: dict[str, Any], columns: list[str], dropped: list[str]):
        self.config, self.columns, self.dropped = config, columns, dropped
        self.caught: list[warnings.WarningMessage] = []
        self.cv: dict[str, Any] = {}
        self.estimator = ""
        self.params: dict[str, Any] = {}
        self.oof_true: list[np.ndarray] = []
        self.oof_pred: list[np.ndarray] = []
        self.fit_seconds = self.predict_seconds = 0.0
        self.train_accuracy = self.positive_rate = 0.0
        self.class_balance = 0.0
        self.oof_confusion = np.zeros((2, 2), dtype=int)
        self.curve: list[tuple[int, str, str, str]] = []
        self.importance_method = ""
        self.ranked: list[tuple[str, float, float]] = []

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """One thread per native library, and every warning recorded (shown in the log)."""
        with threadpool_limits(limits=1), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        self.caught = list(caught)

    def cross_validate(self, model: Any, x: np.ndarray, y: np.ndarray, folds: Any) -> dict[str, Any]:
        self.estimator = re.sub(r"\s+", " ", repr(model))
        self.params = (model.steps[-1][1] if hasattr(model, "steps") else model).get_params()
        self.class_balance = float(np.mean(y))
        cv = cross_validate(model, x, y, cv=folds, scoring=SCORING, n_jobs=1, return_estimator=True,
                            return_indices=True)
        cv["test_score"] = cv["test_accuracy"]
        for estimator, valid in zip(cv["estimator"], cv["indices"]["test"]):
            self.oof_true.append(y[valid])
            self.oof_pred.append(estimator.predict(x[valid]))
            self.oof_confusion += confusion_matrix(self.oof_true[-1], self.oof_pred[-1], labels=[0, 1])
        self.cv = cv
        return cv

    def final_fit(self, model: Any, x: np.ndarray, y: np.ndarray) -> Any:
        start = time.perf_counter()
        model.fit(x, y)
        self.fit_seconds = time.perf_counter() - start
        self.train_accuracy = float(np.mean(model.predict(x) == y))
        return model

    def predict(self, model: Any, x_test: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        labels = model.predict(x_test).astype(int)
        self.predict_seconds = time.perf_counter() - start
        self.positive_rate = float(np.mean(labels))
        return labels

    def learning_curve(self, make: Callable[[], Any], x: np.ndarray, y: np.ndarray) -> None:
        """Accuracy on fold 1's validation rows for growing shares of its training rows (the full
        share is fold 1's own model)."""
        train_idx, valid_idx = self.cv["indices"]["train"][0], self.cv["indices"]["test"][0]
        order = np.random.default_rng(SEED).permutation(train_idx)
        for fraction in CURVE_FRACTIONS:
            rows = order[: int(round(fraction * len(order)))]
            start = time.perf_counter()
            try:
                model = self.cv["estimator"][0] if fraction == 1.0 else make().fit(x[rows], y[rows])
                seconds = self.cv["fit_time"][0] if fraction == 1.0 else time.perf_counter() - start
                train, valid = np.mean(model.predict(x[rows]) == y[rows]), np.mean(model.predict(x[valid_idx]) == y[valid_idx])
            except ValueError as exc:  # e.g. more neighbours than training rows
                self.curve.append((len(rows), "n/a", "n/a", f"skipped ({str(exc)[:70]})"))
                continue
            self.curve.append((len(rows), f"{train:.4f}", f"{valid:.4f}", f"{seconds:.3f}"))

    def importances(self, model: Any, x: np.ndarray, y: np.ndarray, features: list[str]) -> None:
        """The model's own importances where it has them (trees: impurity; linear: |coefficient|
        on standardised features), else permutation importance on fold 1's validation rows."""
        last = model.steps[-1][1] if hasattr(model, "steps") else model
        spread = np.zeros(len(features))
        if hasattr(last, "feature_importances_"):
            values, self.importance_method = np.asarray(last.feature_importances_), "impurity-based (final model)"
        elif hasattr(last, "coef_"):
            values = np.abs(np.ravel(last.coef_))
            self.importance_method = "|coefficient| on standardised features (final model)"
        else:
            valid = self.cv["indices"]["test"][0]
            found = permutation_importance(self.cv["estimator"][0], x[valid], y[valid], scoring="accuracy",
                                           n_repeats=PERMUTATION_REPEATS, random_state=SEED, n_jobs=1)
            values, spread = found.importances_mean, found.importances_std
            self.importance_method = (f"permutation, accuracy drop on fold 1 validation rows "
                                      f"({PERMUTATION_REPEATS} repeats)")
        order = sorted(range(len(features)), key=lambda j: (-round(float(values[j]), 12), j))
        self.ranked = [(features[j], float(values[j]), float(spread[j])) for j in order]

    # -- rendering --------------------------------------------------------------------------
    def render(self, cv_accuracy: float, cv_std: float, n_train: int, n_test: int) -> str:
        sections = [self._header(n_train, n_test), self._folds(cv_accuracy, cv_std), self._final(n_train, n_test),
                    self._importances(), self._curve(), self._warnings()]
        return "\n".join(sections).rstrip() + "\n"

    def _header(self, n_train: int, n_test: int) -> str:
        used = len(self.columns) - len(self.dropped)
        return "\n".join([
            "=== train_and_evaluate: experiment log ===",
            f"python {platform.python_version()} | scikit-learn {sklearn.__version__} | numpy {np.__version__} "
            f"| pandas {pd.__version__} | threads 1",
            f"data: train.csv {n_train} rows x {len(self.columns)} features ({self.columns[0]}..{self.columns[-1]}); "
            f"test.csv {n_test} rows",
            f"dropped features: {', '.join(self.dropped) or 'none'} -> {used} features used",
            f"class balance (train): target=1 {self.class_balance:.1%}, target=0 {1 - self.class_balance:.1%}",
            f"config: {json.dumps(self.config, sort_keys=True)}",
            f"estimator: {self.estimator}",
            "parameters:",
            *self._wrapped([f"{k}={v!r}" for k, v in sorted(self.params.items())]),
        ])

    @staticmethod
    def _wrapped(items: list[str], width: int = 96) -> list[str]:
        lines, line = [], " "
        for item in items:
            if len(line) + len(item) + 2 > width and line.strip():
                lines.append(line.rstrip(","))
                line = " "
            line += f" {item},"
        return lines + [line.rstrip(",")] if line.strip() else lines

    def _folds(self, cv_accuracy: float, cv_std: float) -> str:
        cv = self.cv
        lines = ["", RULE, f"{len(cv['fit_time'])}-fold stratified cross-validation (shuffle=True, random_state={SEED})",
                 "fold  n_train  n_valid  accuracy      f1  roc_auc   fit_s  score_s"]
        for i in range(len(cv["fit_time"])):
            lines.append(f"{i + 1:>4}  {len(cv['indices']['train'][i]):>7}  {len(cv['indices']['test'][i]):>7}  "
                         f"{cv['test_accuracy'][i]:>8.4f}  {cv['test_f1'][i]:>6.4f}  {cv['test_roc_auc'][i]:>7.4f}  "
                         f"{cv['fit_time'][i]:>6.3f}  {cv['score_time'][i]:>7.3f}")
        acc = cv["test_accuracy"]
        (tn, fp), (fn, tp) = self.oof_confusion
        lines += [f"mean accuracy {cv_accuracy:.4f} +/- {cv_std:.4f} (std over folds; min {acc.min():.4f}, "
                  f"max {acc.max():.4f})",
                  f"mean f1 {np.mean(cv['test_f1']):.4f}, mean roc_auc {np.mean(cv['test_roc_auc']):.4f}; "
                  f"total fit {np.sum(cv['fit_time']):.2f} s, score {np.sum(cv['score_time']):.2f} s",
                  f"out-of-fold confusion matrix: tn={tn} fp={fp} fn={fn} tp={tp}",
                  "out-of-fold classification report:",
                  classification_report(np.concatenate(self.oof_true), np.concatenate(self.oof_pred), labels=[0, 1],
                                        target_names=["target=0", "target=1"], digits=4, zero_division=0).rstrip()]
        return "\n".join(lines)

    def _final(self, n_train: int, n_test: int) -> str:
        gap = self.train_accuracy - float(np.mean(self.cv["test_accuracy"]))
        hint = "overfitting: training accuracy far above CV" if gap > 0.05 else "train/CV gap small"
        return "\n".join(["", RULE, f"final fit on all {n_train} training rows: {self.fit_seconds:.3f} s; "
                          f"predict {n_test} test rows: {self.predict_seconds:.3f} s",
                          f"training accuracy (resubstitution) {self.train_accuracy:.4f}; gap to CV {gap:+.4f} "
                          f"({hint})",
                          f"predicted class balance (test): target=1 {self.positive_rate:.1%}",
                          "wrote metrics.json, predictions.csv"])

    def _importances(self) -> str:
        lines = ["", RULE, f"feature importances, top {TOP_FEATURES} of {len(self.ranked)}: {self.importance_method}",
                 "rank  feature  importance     std  share"]
        total = sum(max(v, 0.0) for _, v, _ in self.ranked) or 1.0
        for rank, (name, value, spread) in enumerate(self.ranked[:TOP_FEATURES], start=1):
            bar = "#" * int(round(20 * max(value, 0.0) / total))
            lines.append(f"{rank:>4}  {name:<7}  {value:>10.4f}  {spread:>6.4f}  {max(value, 0.0) / total:>5.1%} {bar}"
                         .rstrip())
        rest = self.ranked[TOP_FEATURES:]
        if rest:
            lines.append(f"      ... {len(rest)} more, together {sum(max(v, 0.0) for _, v, _ in rest) / total:.1%}")
        return "\n".join(lines)

    def _curve(self) -> str:
        lines = ["", RULE, "learning curve (fold 1 split: growing shares of its training rows, scored on its "
                 f"{len(self.cv['indices']['test'][0])} validation rows)", "train_rows  train_acc  valid_acc   fit_s"]
        lines += [f"{rows:>10}  {train:>9}  {valid:>9}  {seconds:>6}" for rows, train, valid, seconds in self.curve]
        return "\n".join(lines)

    def _warnings(self) -> str:
        counts: dict[str, int] = {}
        for item in self.caught:
            text = re.sub(r"\s+", " ", f"{item.category.__name__}: {item.message}").strip()[:WARNING_CHARS]
            counts[text] = counts.get(text, 0) + 1
        lines = ["", RULE, f"warnings: {sum(counts.values()) or 'none'}"]
        lines += [f"  {text} (x{n})" for text, n in list(counts.items())[:MAX_WARNINGS]]
        if len(counts) > MAX_WARNINGS:
            lines.append(f"  ... {len(counts) - MAX_WARNINGS} more distinct warning(s)")
        return "\n".join(lines)
