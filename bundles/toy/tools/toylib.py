"""Shared code of the toy bundle: config validation, model factory, training and evaluation.

Used by tools/train_and_evaluate.py and by the workspace's train.py (which imports it
from $CTXEVAL_TOOLS), so both always train and score exactly the same way.
"""

from __future__ import annotations

import os

# One thread per native library: the sandbox has ~1 CPU, and OpenMP (used by
# HistGradientBoosting) otherwise starts a thread per host core and slows down badly.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

SEED = 0
CV_FOLDS = 5
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
DROP_KEY = "drop_features"  # config key: feature columns left out (not a model parameter)
OBSERVATION_ENV = "TOY_OBSERVATION"  # "full": the tool's result gains the experiment log `report`


class ConfigError(ValueError):
    """The model configuration is invalid; the message says what is wrong."""


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its kind ("int", "float" or "choice"), default and allowed values."""

    kind: str
    default: Any
    low: float | None = None  # inclusive lower bound for int/float
    high: float | None = None  # inclusive upper bound for int/float
    low_exclusive: bool = False
    choices: tuple[Any, ...] = ()
    nullable: bool = False  # null (None) allowed, e.g. max_depth: null = unlimited

    def describe(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(json.dumps(c) for c in self.choices)
        else:
            lo = "" if self.low is None else f"{'>' if self.low_exclusive else '>='} {self.low:g}"
            hi = "" if self.high is None else f"<= {self.high:g}"
            text = f"{'an integer' if self.kind == 'int' else 'a number'} {' and '.join(s for s in (lo, hi) if s)}"
        return text + (" or null" if self.nullable else "")

    def check(self, model: str, name: str, value: Any) -> Any:
        """Return the value if valid (ints accepted for floats), else raise ConfigError."""
        if value is None and self.nullable:
            return None
        ok = False
        if self.kind == "choice":
            ok = value in self.choices and not isinstance(value, bool)
        elif self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            value = float(value) if ok else value
        if ok and self.kind != "choice":
            ok = (self.low is None or value > self.low or (value == self.low and not self.low_exclusive)) and (
                self.high is None or value <= self.high
            )
        if not ok:
            raise ConfigError(f"{model}: {name} must be {self.describe()}, got {json.dumps(value)}")
        return value


MAX_DEPTH = Param("int", None, low=1, high=50, nullable=True)
MIN_SAMPLES_LEAF = Param("int", 1, low=1, high=200)

# Every model the tool accepts, with its hyper-parameters. Keep bundle.yaml's schema in sync.
MODELS: dict[str, dict[str, Param]] = {
    "logistic_regression": {
        "C": Param("float", 1.0, low=0.0, low_exclusive=True, high=1e6),
        "max_iter": Param("int", 1000, low=10, high=10000),
    },
    "decision_tree": {
        "max_depth": MAX_DEPTH,
        "min_samples_leaf": MIN_SAMPLES_LEAF,
        "criterion": Param("choice", "gini", choices=("gini", "entropy", "log_loss")),
    },
    "random_forest": {
        "n_estimators": Param("int", 100, low=1, high=500),
        "max_depth": MAX_DEPTH,
        "min_samples_leaf": MIN_SAMPLES_LEAF,
        "max_features": Param("choice", "sqrt", choices=("sqrt", "log2"), nullable=True),
    },
    "gradient_boosting": {
        "n_estimators": Param("int", 100, low=1, high=500),
        "learning_rate": Param("float", 0.1, low=0.0, low_exclusive=True, high=1.0),
        "max_depth": Param("int", 3, low=1, high=10),
        "subsample": Param("float", 1.0, low=0.0, low_exclusive=True, high=1.0),
    },
    "hist_gradient_boosting": {
        "max_iter": Param("int", 100, low=1, high=1000),
        "learning_rate": Param("float", 0.1, low=0.0, low_exclusive=True, high=1.0),
        "max_depth": MAX_DEPTH,
        "max_leaf_nodes": Param("int", 31, low=2, high=256),
        "min_samples_leaf": Param("int", 20, low=1, high=200),
        "l2_regularization": Param("float", 0.0, low=0.0, high=100.0),
    },
    "knn": {
        "n_neighbors": Param("int", 5, low=1, high=200),
        "weights": Param("choice", "uniform", choices=("uniform", "distance")),
    },
}


def validate_config(config: Any) -> dict[str, Any]:
    """Check a config and return it with every hyper-parameter filled in (defaults for the missing)."""
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a JSON object, got {json.dumps(config)}")
    model = config.get("model")
    if model not in MODELS:
        raise ConfigError(f"config.model must be one of {', '.join(MODELS)}, got {json.dumps(model)}")
    params = MODELS[model]
    unknown = sorted(set(config) - set(params) - {"model", DROP_KEY})
    if unknown:
        raise ConfigError(
            f"{model}: unknown parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(params) or '(none)'}"
        )
    resolved: dict[str, Any] = {"model": model}
    for name, spec in params.items():
        resolved[name] = spec.check(model, name, config[name]) if name in config else spec.default
    if DROP_KEY in config:  # only when given: a config without it resolves exactly as before
        resolved[DROP_KEY] = check_drop_features(config[DROP_KEY])
    return resolved


def check_drop_features(value: Any, columns: list[str] | None = None) -> list[str]:
    """An array of unique feature names (checked against `columns` when given); returned as given."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"config.{DROP_KEY} must be an array of feature names, got {json.dumps(value)}")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise ConfigError(f"config.{DROP_KEY} names {', '.join(repeated)} more than once")
    if columns is not None:
        unknown = [v for v in value if v not in columns]
        if unknown:
            raise ConfigError(f"config.{DROP_KEY}: unknown feature column(s) {', '.join(unknown)}; "
                              f"the columns are {columns[0]}..{columns[-1]}")
        if len(value) >= len(columns):
            raise ConfigError(f"config.{DROP_KEY} leaves no feature to train on")
    return list(value)


def make_model(config: dict[str, Any]) -> ClassifierMixin:
    """Build the (unfitted) estimator for a validated config; single-threaded and seeded."""
    p = {k: v for k, v in config.items() if k not in ("model", DROP_KEY)}
    model = config["model"]
    if model == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(**p))
    if model == "decision_tree":
        return DecisionTreeClassifier(random_state=SEED, **p)
    if model == "random_forest":
        return RandomForestClassifier(random_state=SEED, n_jobs=1, **p)
    if model == "gradient_boosting":
        return GradientBoostingClassifier(random_state=SEED, **p)
    if model == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(random_state=SEED, early_stopping=False, **p)
    if model == "knn":
        return make_pipeline(StandardScaler(), KNeighborsClassifier(n_jobs=1, **p))
    raise ConfigError(f"unknown model {model!r}")


def env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return Path(value)


def load_data(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Read train.csv and test.csv; return (train, test, feature column names)."""
    train = pd.read_csv(data_dir / "train.csv")
    test = pd.read_csv(data_dir / "test.csv")
    features = [c for c in train.columns if c not in ("id", "target")]
    missing = [c for c in ["id", *features] if c not in test.columns]
    if "target" not in train.columns or missing:
        raise RuntimeError(f"unexpected data layout in {data_dir} (missing columns: {missing or ['target']})")
    return train, test, features


def train_and_evaluate(config: Any, data_dir: Path, workspace: Path) -> dict[str, Any]:
    """Validate `config`, score it by seeded 5-fold CV accuracy on train, fit on all of train,
    and write predictions.csv and metrics.json into `workspace`. Returns the tool's result."""
    resolved = validate_config(config)
    train, test, columns = load_data(data_dir)
    dropped = check_drop_features(resolved.get(DROP_KEY, []), columns)
    features = [c for c in columns if c not in dropped]
    x, y = train[features].to_numpy(), train["target"].to_numpy()
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED)
    full = os.environ.get(OBSERVATION_ENV) == "full"
    if full:
        import toyreport  # the experiment log: only when asked for (the base tool stays as it was)
        log = toyreport.ExperimentLog(resolved, columns, dropped)
        with log.capturing():
            cv = log.cross_validate(make_model(resolved), x, y, folds)
            model = log.final_fit(make_model(resolved), x, y)
            labels = log.predict(model, test[features].to_numpy())
            log.learning_curve(lambda: make_model(resolved), x, y)
            log.importances(model, x, y, features)
        scores = cv["test_score"]
    else:
        with threadpool_limits(limits=1):
            cv = cross_validate(make_model(resolved), x, y, cv=folds, scoring="accuracy", n_jobs=1)
            scores = cv["test_score"]
            model = make_model(resolved).fit(x, y)
            labels = model.predict(test[features].to_numpy()).astype(int)
    predictions = pd.DataFrame({"id": test["id"], "target": labels})
    cv_accuracy = round(float(np.mean(scores)), 6)
    metrics = {
        "metric": "accuracy",
        "cv_accuracy": cv_accuracy,
        "cv_std": round(float(np.std(scores)), 6),
        "cv_folds": CV_FOLDS,
        "config": resolved,
        "predictions": PREDICTIONS_FILE,
        "n_train": int(len(train)),
        "n_test": int(len(test)),
    }
    write_atomic(workspace / PREDICTIONS_FILE, predictions.to_csv(index=False))
    write_atomic(workspace / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    result = {
        "cv_accuracy": cv_accuracy,
        "cv_std": metrics["cv_std"],
        "config": resolved,
        "wrote": [METRICS_FILE, PREDICTIONS_FILE],
    }
    if full:
        result["report"] = log.render(cv_accuracy, metrics["cv_std"], len(train), len(test))
    return result


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a killed run never leaves a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
