"""The text of the experiment log (report.ExperimentLog holds what is shown)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import classification_report

from .families import CLASSIFICATION, SEED

if TYPE_CHECKING:
    from .report import ExperimentLog

TOP_FEATURES = 20
MAX_WARNINGS = 4  # distinct warnings shown
WARNING_CHARS = 220
RULE = "-" * 72


def render_log(log: "ExperimentLog", cv_score: float, cv_std: float, n_train: int, n_test: int, versions: str,
               config: str) -> str:
    sections = [_header(log, n_train, n_test, versions, config), _folds(log, cv_score, cv_std), _out_of_fold(log),
                _final(log, n_train, n_test), _importances(log), _curve(log), _warnings(log)]
    return "\n".join(sections).rstrip() + "\n"


def _target_line(log: "ExperimentLog", values: np.ndarray, where: str) -> str:
    if log.task.kind == CLASSIFICATION:
        classes, counts = np.unique(values, return_counts=True)
        shares = ", ".join(f"{int(c)}: {n / len(values):.1%}" for c, n in zip(classes, counts))
        return f"class shares ({where}): {shares}"
    return (f"target ({where}): mean {np.mean(values):.2f}, std {np.std(values):.2f}, "
            f"min {np.min(values):.2f}, max {np.max(values):.2f}")


def _wrapped(items: list[str], width: int = 96) -> list[str]:
    lines, line = [], " "
    for item in items:
        if len(line) + len(item) + 2 > width and line.strip():
            lines.append(line.rstrip(","))
            line = " "
        line += f" {item},"
    return lines + [line.rstrip(",")] if line.strip() else lines


def _header(log: "ExperimentLog", n_train: int, n_test: int, versions: str, config: str) -> str:
    used = len(log.columns) - len(log.dropped)
    return "\n".join([
        f"=== train_and_evaluate: experiment log ({log.task.name}, {log.task.kind}) ===", versions,
        f"data: train.csv {n_train} rows x {len(log.columns)} features ({log.columns[0]}..{log.columns[-1]}); "
        f"test.csv {n_test} rows",
        f"dropped features: {', '.join(log.dropped) or 'none'} -> {used} features used",
        _target_line(log, log.target_train, "train"), f"config: {config}", f"estimator: {log.estimator}",
        "parameters:", *_wrapped([f"{k}={v!r}" for k, v in sorted(log.params.items())]),
    ])


def _folds(log: "ExperimentLog", cv_score: float, cv_std: float) -> str:
    cv, names = log.cv, list(log.secondary)
    kind = "stratified " if log.task.kind == CLASSIFICATION else ""
    lines = ["", RULE, f"{len(cv['fit_time'])}-fold {kind}cross-validation (shuffle=True, random_state={SEED}), "
             f"graded metric: {log.task.metric.name} ({log.task.metric.direction})",
             "fold  n_train  n_valid  " + "  ".join(f"{n:>17}" for n in names) + "   fit_s  score_s"]
    for i, fold in enumerate(log.folds):
        lines.append(f"{i + 1:>4}  {len(cv['indices']['train'][i]):>7}  {len(cv['indices']['test'][i]):>7}  "
                     + "  ".join(f"{fold[n]:>17.4f}" for n in names)
                     + f"  {cv['fit_time'][i]:>6.3f}  {cv['score_time'][i]:>7.3f}")
    scores = log.task.metric.cv_scores(cv["test_score"])
    means = ", ".join(f"{n} {np.mean([f[n] for f in log.folds]):.4f}" for n in names)
    lines += [f"mean {log.task.metric.name} {cv_score:.4f} +/- {cv_std:.4f} (std over folds; min {scores.min():.4f}, "
              f"max {scores.max():.4f})", f"fold means: {means}",
              f"total fit {np.sum(cv['fit_time']):.2f} s, score {np.sum(cv['score_time']):.2f} s"]
    return "\n".join(lines)


def _out_of_fold(log: "ExperimentLog") -> str:
    truth, predicted = np.concatenate(log.oof_true), np.concatenate(log.oof_pred)
    if log.task.kind == CLASSIFICATION:
        body = classification_report(truth, predicted, digits=4, zero_division=0).rstrip()
        return "\n".join(["", RULE, "out-of-fold classification report:", body])
    residual = predicted - truth
    quantiles = np.quantile(np.abs(residual), [0.5, 0.9, 0.99])
    worst = np.argsort(-np.abs(residual))[:5]
    return "\n".join(["", RULE, "out-of-fold residuals (prediction - truth):",
                      f"mean {residual.mean():+.3f}, std {residual.std():.3f}; |residual| median {quantiles[0]:.3f}, "
                      f"90% {quantiles[1]:.3f}, 99% {quantiles[2]:.3f}",
                      "largest: " + ", ".join(f"truth {truth[i]:.1f} predicted {predicted[i]:.1f}" for i in worst)])


def _final(log: "ExperimentLog", n_train: int, n_test: int) -> str:
    cv_mean = float(np.mean(log.task.metric.cv_scores(log.cv["test_score"])))
    gap = log.train_score - cv_mean if log.task.metric.direction == "maximize" else cv_mean - log.train_score
    hint = "overfitting: training score far better than CV" if gap > 0.05 * max(abs(cv_mean), 1e-9) else \
        "train/CV gap small"
    return "\n".join(["", RULE, f"final fit on all {n_train} training rows: {log.fit_seconds:.3f} s; "
                      f"predict {n_test} test rows: {log.predict_seconds:.3f} s",
                      f"training {log.task.metric.name} (resubstitution) {log.train_score:.4f}; "
                      f"gap to CV {gap:+.4f} ({hint})", _target_line(log, log.predicted_test, "test predictions"),
                      "wrote metrics.json, predictions.csv"])


def _importances(log: "ExperimentLog") -> str:
    lines = ["", RULE, f"feature importances, top {TOP_FEATURES} of {len(log.ranked)}: {log.importance_method}",
             "rank  feature       importance     std  share"]
    total = sum(max(v, 0.0) for _, v, _ in log.ranked) or 1.0
    for rank, (name, value, spread) in enumerate(log.ranked[:TOP_FEATURES], start=1):
        bar = "#" * int(round(20 * max(value, 0.0) / total))
        lines.append(f"{rank:>4}  {name:<12}  {value:>10.4f}  {spread:>6.4f}  {max(value, 0.0) / total:>5.1%} {bar}"
                     .rstrip())
    rest = log.ranked[TOP_FEATURES:]
    if rest:
        lines.append(f"      ... {len(rest)} more, together {sum(max(v, 0.0) for _, v, _ in rest) / total:.1%}")
    return "\n".join(lines)


def _curve(log: "ExperimentLog") -> str:
    name = log.task.metric.name
    lines = ["", RULE, "learning curve (fold 1 split: growing shares of its training rows, scored on its "
             f"{len(log.cv['indices']['test'][0])} validation rows)", f"train_rows  train_{name}  valid_{name}   fit_s"]
    lines += [f"{rows:>10}  {train:>{7 + len(name)}}  {valid:>{7 + len(name)}}  {seconds:>6}"
              for rows, train, valid, seconds in log.curve]
    return "\n".join(lines)


def _warnings(log: "ExperimentLog") -> str:
    counts: dict[str, int] = {}
    for item in log.caught:
        text = re.sub(r"\s+", " ", f"{item.category.__name__}: {item.message}").strip()[:WARNING_CHARS]
        counts[text] = counts.get(text, 0) + 1
    lines = ["", RULE, f"warnings: {sum(counts.values()) or 'none'}"]
    lines += [f"  {text} (x{n})" for text, n in list(counts.items())[:MAX_WARNINGS]]
    if len(counts) > MAX_WARNINGS:
        lines.append(f"  ... {len(counts) - MAX_WARNINGS} more distinct warning(s)")
    return "\n".join(lines)

