"""The work of a tabular task's `train_and_evaluate` tool (and of the starter's train.py):
validate a config, score it by seeded k-fold cross-validation on train.csv, fit it on all of
train.csv, write predictions.csv and metrics.json into the workspace."""
from __future__ import annotations

import os

# One thread per native library: a sandbox has ~1 CPU, and OpenMP (HistGradientBoosting) would
# otherwise start a thread per host core and slow down badly.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from .families import CLASSIFICATION, SEED, make_model  # noqa: E402
from .params import check_drop_features, validate_config  # noqa: E402
from .task import OBSERVATION_ENV, TabularTask  # noqa: E402

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
ID, TARGET = "id", "target"


def load_data(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """train.csv and test.csv, and the feature columns (all but id and target)."""
    train, test = pd.read_csv(data_dir / "train.csv"), pd.read_csv(data_dir / "test.csv")
    features = [c for c in train.columns if c not in (ID, TARGET)]
    missing = [c for c in [ID, *features] if c not in test.columns]
    if TARGET not in train.columns or missing:
        raise RuntimeError(f"unexpected data layout in {data_dir} (missing columns: {missing or [TARGET]})")
    return train, test, features


def folds(task: TabularTask) -> Any:
    splitter = StratifiedKFold if task.kind == CLASSIFICATION else KFold
    return splitter(n_splits=task.cv_folds, shuffle=True, random_state=SEED)


def _predictions(task: TabularTask, ids: pd.Series, predicted: np.ndarray) -> pd.DataFrame:
    values = predicted.astype(int) if task.kind == CLASSIFICATION else np.round(predicted.astype(float), 6)
    return pd.DataFrame({ID: ids, TARGET: values})


def train_and_evaluate(task: TabularTask, config: Any, data_dir: Path, workspace: Path) -> dict[str, Any]:
    """Validate `config`, cross-validate it, fit it on all of train, write the two output files;
    return the tool's result (with the experiment log `report` when the observation is "full")."""
    resolved = validate_config(config, task.params())
    train, test, columns = load_data(data_dir)
    dropped = check_drop_features(resolved.get("drop_features", []), columns)
    features = [c for c in columns if c not in dropped]
    x, y, x_test = train[features].to_numpy(), train[TARGET].to_numpy(), test[features].to_numpy()
    full = os.environ.get(OBSERVATION_ENV) == "full"
    log = None
    if full:
        from .report import ExperimentLog
        log = ExperimentLog(task, resolved, columns, dropped)
        with log.capturing():
            scores = log.cross_validate(make_model(task.kind, resolved), x, y, folds(task))
            model = log.final_fit(make_model(task.kind, resolved), x, y)
            predicted = log.predict(model, x_test)
            log.learning_curve(lambda: make_model(task.kind, resolved), x, y)
            log.importances(model, x, y, features)
    else:
        with threadpool_limits(limits=1):
            cv = cross_validate(make_model(task.kind, resolved), x, y, cv=folds(task), scoring=task.metric.scorer,
                                n_jobs=1)
            scores = task.metric.cv_scores(cv["test_score"])
            predicted = make_model(task.kind, resolved).fit(x, y).predict(x_test)
    cv_score, cv_std = round(float(np.mean(scores)), 6), round(float(np.std(scores)), 6)
    metrics = {"metric": task.metric.name, task.score_key: cv_score, "cv_std": cv_std, "cv_folds": task.cv_folds,
               "config": resolved, "predictions": PREDICTIONS_FILE, "n_train": int(len(train)),
               "n_test": int(len(test))}
    write_atomic(workspace / PREDICTIONS_FILE, _predictions(task, test[ID], predicted).to_csv(index=False))
    write_atomic(workspace / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    result = {task.score_key: cv_score, "cv_std": cv_std, "config": resolved, "wrote": [METRICS_FILE, PREDICTIONS_FILE]}
    if log is not None:
        result["report"] = log.render(cv_score, cv_std, len(train), len(test))
    return result


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a killed run never leaves a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
