"""The experiment log of the nomad tool (NOMAD_OBSERVATION=full, the `nomad@long` variant).

What a real experiment script prints: versions, data and config, per-fold RMSLE per target with
fit/predict timings, the worst out-of-fold band gaps, the final fit (resubstitution RMSLE, tree
sizes, test prediction ranges), the model's own feature importances (split gain of the final
trees: cheap, no refitting), a short learning curve (reusing fold 1's models for the full share)
and the warnings raised. About 3,500-4,500 characters; deterministic for a config except timings.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
import time
import warnings
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np
import pandas as pd
import sklearn

CV_FOLDS, SEED, ID = 5, 0, "id"  # nomadlib's (checked when a log is made)
TARGETS = ("formation_energy_ev_natom", "bandgap_energy_ev")
SHORT = {"formation_energy_ev_natom": "formation", "bandgap_energy_ev": "bandgap"}
BANDGAP = "bandgap_energy_ev"
TOP_FEATURES = 8
NAME_CHARS = 26  # the longest raw column name (lattice_angle_alpha_degree)
WORST_ROWS = 5
CURVE_FRACTIONS = (0.25, 0.5)  # plus 1.0: fold 1's own models
MAX_WARNINGS = 4  # distinct warnings shown
WARNING_CHARS = 200
RULE = "-" * 72


@dataclass
class FoldTarget:
    """One target's model in one CV fold."""

    rmsle: float
    fit_seconds: float
    predict_seconds: float
    n_fit: int
    n_held: int


@dataclass
class FinalFit:
    model: Any
    fit_seconds: float
    predict_seconds: float
    train_rmsle: float
    test_predictions: np.ndarray = field(repr=False)


class ExperimentLog:
    """Fits and times what nomadlib asks it to (the same fits nomadlib does itself, so every score
    is identical), records what they showed and renders the log."""

    def __init__(self, lib: SimpleNamespace, config: dict[str, Any], train: pd.DataFrame, test: pd.DataFrame):
        if (lib.CV_FOLDS, lib.SEED, lib.ID, tuple(lib.TARGETS)) != (CV_FOLDS, SEED, ID, TARGETS):
            raise RuntimeError("nomadreport is out of step with nomadlib (folds, seed or targets)")
        self.lib = lib  # nomadlib's functions, passed in: the one module that trains (never a second copy)
        self.config = config
        self.features: list[str] = []  # the model's input columns (after drop_features)
        self.dropped: list[str] = []
        self.train, self.test = train, test
        self.folds: dict[tuple[int, str], FoldTarget] = {}
        self.fold_one: dict[str, tuple[Any, np.ndarray, np.ndarray]] = {}  # target -> (model, fit, held rows)
        self.oof = {t: np.full(len(train), np.nan) for t in TARGETS}
        self.final: dict[str, FinalFit] = {}
        self.curve: list[tuple[int, float, float, float]] = []
        self.caught: list[warnings.WarningMessage] = []

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """Every warning recorded (shown in the log, not on stderr)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        self.caught = list(caught)

    # -- the measured steps -------------------------------------------------------------------
    def inputs(self, features: list[str], dropped: list[str]) -> None:
        self.features, self.dropped = features, dropped

    def _fit(self, x: np.ndarray, y: np.ndarray) -> Any:
        return self.lib.fit_model(self.config, x, y)

    def _predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        return self.lib.predict_with(self.config, model, x)

    def fold(self, fold: int, name: str, x: np.ndarray, y: np.ndarray, fit_rows: np.ndarray,
             held_rows: np.ndarray) -> np.ndarray:
        """Fit and score one target in one fold (nomadlib.cross_validate's own computation)."""
        start = time.perf_counter()
        model = self._fit(x[fit_rows], y[fit_rows])
        fitted = time.perf_counter()
        predicted = self._predict(model, x[held_rows])
        seconds = time.perf_counter() - fitted
        score = self.lib.rmsle(y[held_rows], predicted)
        self.folds[(fold, name)] = FoldTarget(score, fitted - start, seconds, len(fit_rows), len(held_rows))
        self.oof[name][held_rows] = predicted
        if fold == 0:
            self.fold_one[name] = (model, fit_rows, held_rows)
        return predicted

    def final_fit(self, name: str, x: np.ndarray, y: np.ndarray, x_new: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        model = self._fit(x, y)
        fitted = time.perf_counter()
        predicted = self._predict(model, x_new)
        seconds = time.perf_counter() - fitted
        train_rmsle = self.lib.rmsle(y, self._predict(model, x))
        self.final[name] = FinalFit(model, fitted - start, seconds, train_rmsle, predicted)
        return predicted

    def learning_curve(self, x: np.ndarray, targets: dict[str, np.ndarray]) -> None:
        """Mean RMSLE over the targets on fold 1's held-out rows for growing shares of its fitting
        rows (a seeded subsample; the full share is fold 1's own models, not refitted)."""
        if not self.fold_one:
            return
        _, fit_rows, held_rows = next(iter(self.fold_one.values()))
        order = np.random.default_rng(SEED).permutation(fit_rows)
        for fraction in (*CURVE_FRACTIONS, 1.0):
            rows = np.sort(order[: max(2, int(round(fraction * len(fit_rows))))])
            start, train_scores, valid_scores = time.perf_counter(), [], []
            for name, y in targets.items():
                model = self.fold_one[name][0] if fraction == 1.0 else self._fit(x[rows], y[rows])
                train_scores.append(self.lib.rmsle(y[rows], self._predict(model, x[rows])))
                valid_scores.append(self.lib.rmsle(y[held_rows], self._predict(model, x[held_rows])))
            seconds = (sum(self.folds[(0, t)].fit_seconds for t in targets) if fraction == 1.0
                       else time.perf_counter() - start)
            self.curve.append((len(rows), float(np.mean(train_scores)), float(np.mean(valid_scores)), seconds))

    # -- rendering ----------------------------------------------------------------------------
    def render(self, scores: dict[str, Any]) -> str:
        sections = [self._header(), self._folds(scores), self._worst(), self._final(scores),
                    self._importances(), self._curve(), self._warnings()]
        return "\n".join(sections).rstrip() + "\n"

    def _header(self) -> str:
        model = self.lib.make_model(self.config)
        params = model.get_params()
        defaults = type(model)().get_params()
        changed = [f"{k}={v!r}" for k, v in sorted(params.items()) if v != defaults.get(k)]
        target_lines = [f"  {t}: mean {self.train[t].mean():.4f}, std {self.train[t].std():.4f}, "
                        f"min {self.train[t].min():.4f}, max {self.train[t].max():.4f}" for t in TARGETS]
        transform = "log1p(target), predictions expm1" if self.config["log_target"] else "raw targets"
        return "\n".join([
            "=== train_and_evaluate: experiment log ===",
            f"python {platform.python_version()} | scikit-learn {sklearn.__version__} | numpy {np.__version__} "
            f"| pandas {pd.__version__} | threads 1",
            f"data: train.csv {len(self.train)} rows, test.csv {len(self.test)} rows; "
            f"features.py make_features -> {len(self.features) + len(self.dropped)} columns",
            f"dropped features: {', '.join(self.dropped) or 'none'} -> {len(self.features)} features used",
            "targets (train):", *target_lines,
            f"config: {json.dumps(self.config, sort_keys=True)}",
            f"estimator (one per target): HistGradientBoostingRegressor({', '.join(changed)})",
            f"target transform: {transform}; predictions clipped at 0",
        ])

    def _folds(self, scores: dict[str, Any]) -> str:
        lines = ["", RULE, f"{CV_FOLDS}-fold cross-validation (KFold shuffle=True, random_state={SEED}), RMSLE",
                 "fold  n_fit  n_held  formation  bandgap    mean   fit_s f/b  pred_s"]
        means = []
        for fold in range(CV_FOLDS):
            f, b = self.folds[(fold, TARGETS[0])], self.folds[(fold, TARGETS[1])]
            means.append((f.rmsle + b.rmsle) / 2)
            lines.append(f"{fold + 1:>4}  {f.n_fit:>5}  {f.n_held:>6}  {f.rmsle:>9.4f}  {b.rmsle:>7.4f}  "
                         f"{means[-1]:.4f}  {f.fit_seconds:.2f}/{b.fit_seconds:.2f}  "
                         f"{f.predict_seconds + b.predict_seconds:>6.3f}")
        per = {t: [self.folds[(k, t)].rmsle for k in range(CV_FOLDS)] for t in TARGETS}
        fit_total = sum(r.fit_seconds for r in self.folds.values())
        predict_total = sum(r.predict_seconds for r in self.folds.values())
        lines += [f"mean RMSLE {scores['cv_mean_rmsle']:.5f} +/- {scores['cv_std']:.5f} (std over folds; "
                  f"min {min(means):.4f}, max {max(means):.4f})",
                  "per target: " + ", ".join(f"{SHORT[t]} {np.mean(v):.5f} +/- {np.std(v):.4f}"
                                             for t, v in per.items())
                  + f"; bandgap MAE {scores['cv_bandgap_mae']:.4f} eV",
                  f"total fit {fit_total:.2f} s, predict {predict_total:.2f} s over {2 * CV_FOLDS} models"]
        return "\n".join(lines)

    def _worst(self) -> str:
        truth, predicted = self.train[BANDGAP].to_numpy(dtype=float), self.oof[BANDGAP]
        errors = (np.log1p(predicted) - np.log1p(truth)) ** 2
        order = np.argsort(-errors, kind="stable")[:WORST_ROWS]
        lines = ["largest out-of-fold band gap errors:", "     id  spacegroup  atoms  true_eV  pred_eV  sq_log_err"]
        for j in order:
            row = self.train.iloc[j]
            lines.append(f"{int(row[ID]):>7}  {int(row['spacegroup']):>10}  "
                         f"{int(row['number_of_total_atoms']):>5}  {truth[j]:>7.4f}  {predicted[j]:>7.4f}  "
                         f"{errors[j]:>10.5f}")
        share = errors[order].sum() / (errors.sum() or 1.0)
        lines.append(f"these {WORST_ROWS} rows hold {share:.1%} of the band gap squared log error")
        return "\n".join(lines)

    def _final(self, scores: dict[str, Any]) -> str:
        f, b = self.final[TARGETS[0]], self.final[TARGETS[1]]
        gap = (f.train_rmsle + b.train_rmsle) / 2 - scores["cv_mean_rmsle"]
        overfit = gap < -0.5 * scores["cv_mean_rmsle"]
        hint = "overfitting: training error far below CV" if overfit else "moderate gap"
        trees = []
        for name, fit in self.final.items():
            nodes = [p.nodes for p in (tree[0] for tree in getattr(fit.model, "_predictors", []))]
            leaves = np.mean([n["is_leaf"].sum() for n in nodes]) if nodes else float("nan")
            depth = np.mean([n["depth"].max() for n in nodes]) if nodes else float("nan")
            trees.append(f"{SHORT[name]} {fit.model.n_iter_} trees, mean {leaves:.1f} leaves, "
                         f"mean depth {depth:.1f}")
        ranges = [f"{SHORT[t]} min {v.test_predictions.min():.4f} mean {v.test_predictions.mean():.4f} "
                  f"max {v.test_predictions.max():.4f}" for t, v in self.final.items()]
        return "\n".join(["", RULE, f"final fit on all {len(self.train)} rows: formation {f.fit_seconds:.2f} s, "
                          f"bandgap {b.fit_seconds:.2f} s; predict {len(self.test)} test rows "
                          f"{f.predict_seconds + b.predict_seconds:.3f} s",
                          f"training RMSLE (resubstitution): formation {f.train_rmsle:.4f}, bandgap "
                          f"{b.train_rmsle:.4f}; mean {gap:+.4f} vs CV ({hint})",
                          "trees: " + "; ".join(trees), "test predictions: " + "; ".join(ranges),
                          "wrote submission.csv, metrics.json"])

    def _ranked(self, name: str) -> list[tuple[str, float, int]]:
        """(feature, share of the split gain, splits) for the final model of one target, best first."""
        gain, splits = np.zeros(len(self.features)), np.zeros(len(self.features), dtype=int)
        for tree in getattr(self.final[name].model, "_predictors", []):
            nodes = tree[0].nodes
            inner = nodes[~nodes["is_leaf"].astype(bool)]
            np.add.at(gain, inner["feature_idx"], inner["gain"])
            np.add.at(splits, inner["feature_idx"], 1)
        total = gain.sum() or 1.0
        order = sorted(range(len(self.features)), key=lambda j: (-round(float(gain[j]), 9), j))
        return [(self.features[j], float(gain[j] / total), int(splits[j])) for j in order]

    def _importances(self) -> str:
        ranked = {t: self._ranked(t) for t in TARGETS}
        lines = ["", RULE, f"feature importances: split gain of the final model's trees (share, splits), top "
                 f"{min(TOP_FEATURES, len(self.features))} of {len(self.features)}",
                 f"rank  {TARGETS[0]:<{NAME_CHARS + 12}}  | {TARGETS[1]}"]
        for rank in range(min(TOP_FEATURES, len(self.features))):
            cells = [f"{name[:NAME_CHARS]:<{NAME_CHARS}} {share:>6.1%} {n:>4}"
                     for name, share, n in (ranked[t][rank] for t in TARGETS)]
            lines.append(f"{rank + 1:>4}  {cells[0]}  | {cells[1]}")
        rest = len(self.features) - TOP_FEATURES
        if rest > 0:
            shares = [sum(s for _, s, _ in ranked[t][TOP_FEATURES:]) for t in TARGETS]
            lines.append(f"      ... {rest} more: together {shares[0]:.1%} (formation), "
                         f"{shares[1]:.1%} (bandgap)")
        return "\n".join(lines)

    def _curve(self) -> str:
        held = len(next(iter(self.fold_one.values()))[2]) if self.fold_one else 0
        lines = ["", RULE, f"learning curve (fold 1: growing shares of its fitting rows, scored on its {held} "
                 "held-out rows; mean RMSLE of the targets)", "fit_rows  train_rmsle  valid_rmsle   fit_s"]
        lines += [f"{rows:>8}  {train:>11.4f}  {valid:>11.4f}  {seconds:>6.3f}" for rows, train, valid, seconds
                  in self.curve]
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
