"""Shared code of the nomad bundle: config validation, workspace features, training, CV, outputs.

Used by the tools (train_and_evaluate.py, predict.py) and by the workspace's train.py, which
imports it from $CTXEVAL_TOOLS, so all of them train and score exactly the same way. The
feature code is NOT here: it is the workspace's own `features.py` (`make_features(df)`), loaded
fresh by every call, so the agent can change the features by editing that file.

Model: one scikit-learn HistGradientBoostingRegressor per target (formation_energy_ev_natom,
bandgap_energy_ev), the same hyper-parameters for both, seeded, single-threaded, no early
stopping. Optionally fitted on log1p(target) (`log_target`) and inverted with expm1. Predictions
are clipped at 0 (RMSLE needs non-negative values). CV: 5 folds, shuffled with a fixed seed,
on the public train.csv only; the score is RMSLE per target, averaged over the two targets.

`config.drop_features` (optional) names model input columns (as make_features returns them) left
out of training and prediction. Feature columns of train.csv beyond the 11 raw ones (the
`nomad@long` variant's data has one) are passed to make_features too. With NOMAD_OBSERVATION=full
the result of train_and_evaluate gains `report`, the experiment log (nomadreport.py).
"""

from __future__ import annotations

import os

# One thread per native library: the sandbox has ~1 CPU, and OpenMP (used by
# HistGradientBoosting) otherwise starts a thread per host core and slows down badly.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import contextlib
import importlib.util
import json
import math
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

SEED = 0
CV_FOLDS = 5
ID = "id"
TARGETS = ("formation_energy_ev_natom", "bandgap_energy_ev")
RAW_FEATURES = (
    "spacegroup", "number_of_total_atoms", "percent_atom_al", "percent_atom_ga", "percent_atom_in",
    "lattice_vector_1_ang", "lattice_vector_2_ang", "lattice_vector_3_ang",
    "lattice_angle_alpha_degree", "lattice_angle_beta_degree", "lattice_angle_gamma_degree",
)
METRIC = "mean_rmsle"
FEATURES_FILE = "features.py"
METRICS_FILE = "metrics.json"
SUBMISSION_FILE = "submission.csv"
MAX_FEATURES = 500  # far above any sensible feature set; keeps a call inside its time budget
DROP_KEY = "drop_features"  # config key: model input columns left out (not a hyper-parameter)
OBSERVATION_ENV = "NOMAD_OBSERVATION"  # "full": train_and_evaluate's result gains the experiment log


class ConfigError(ValueError):
    """The model configuration is invalid; the message says what is wrong."""


class FeatureError(RuntimeError):
    """The workspace's features.py is missing, fails, or returns unusable features."""


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its kind ("int", "float" or "bool"), default and allowed range."""

    kind: str
    default: Any
    low: float | None = None  # inclusive
    high: float | None = None  # inclusive
    nullable: bool = False  # null (None) allowed, e.g. max_depth: null = unlimited
    help: str = ""

    def describe(self) -> str:
        if self.kind == "bool":
            text = "true or false"
        else:
            text = f"{'an integer' if self.kind == 'int' else 'a number'} from {self.low:g} to {self.high:g}"
        return text + (" or null" if self.nullable else "")

    def check(self, name: str, value: Any) -> Any:
        """Return the value if valid (ints accepted for floats), else raise ConfigError."""
        if value is None and self.nullable:
            return None
        if self.kind == "bool":
            ok = isinstance(value, bool)
        elif self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            value = float(value) if ok else value
        if ok and self.kind != "bool":
            ok = self.low <= value <= self.high
        if not ok:
            raise ConfigError(f"{name} must be {self.describe()}, got {json.dumps(value)}")
        return value


# Every hyper-parameter the tools accept, with scikit-learn's defaults. Keep bundle.yaml in sync.
# The upper bounds keep the slowest allowed config well inside a tool call's time budget.
PARAMS: dict[str, Param] = {
    "learning_rate": Param("float", 0.1, 0.001, 1.0, help="shrinkage of each boosting step"),
    "max_iter": Param("int", 100, 1, 500, help="boosting rounds (trees) per target"),
    "max_depth": Param("int", None, 1, 20, nullable=True, help="maximum tree depth, null = unlimited"),
    "max_leaf_nodes": Param("int", 31, 2, 64, help="maximum leaves per tree"),
    "min_samples_leaf": Param("int", 20, 1, 200, help="minimum training rows per leaf"),
    "l2_regularization": Param("float", 0.0, 0.0, 100.0, help="L2 penalty on leaf values"),
    "log_target": Param("bool", False, help="fit log1p(target) and invert with expm1 (matches RMSLE)"),
}


def validate_config(config: Any) -> dict[str, Any]:
    """Check a config and return it with every hyper-parameter filled in (defaults for the missing)."""
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a JSON object, got {json.dumps(config)}")
    unknown = sorted(set(config) - set(PARAMS) - {DROP_KEY})
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(PARAMS)}")
    resolved = {name: spec.check(name, config[name]) if name in config else spec.default
                for name, spec in PARAMS.items()}
    if DROP_KEY in config:  # only when given: a config without it resolves exactly as before
        resolved[DROP_KEY] = check_drop_features(config[DROP_KEY])
    return resolved


def check_drop_features(value: Any, columns: list[str] | None = None) -> list[str]:
    """An array of unique column names (checked against the model's input `columns` when given)."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"config.{DROP_KEY} must be an array of feature column names, got {json.dumps(value)}")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise ConfigError(f"config.{DROP_KEY} names {', '.join(repeated)} more than once")
    if columns is not None:
        unknown = [v for v in value if v not in columns]
        if unknown:
            shown = ", ".join(columns[:40]) + (f", ... ({len(columns)} in all)" if len(columns) > 40 else "")
            raise ConfigError(f"config.{DROP_KEY}: unknown feature column(s) {', '.join(unknown)}; the model's "
                              f"input columns (as features.py returns them) are: {shown}")
        if len(value) >= len(columns):
            raise ConfigError(f"config.{DROP_KEY} leaves no feature to train on")
    return list(value)


def make_model(config: dict[str, Any]) -> HistGradientBoostingRegressor:
    """The unfitted regressor of a validated config (one per target)."""
    params = {k: v for k, v in config.items() if k not in ("log_target", DROP_KEY)}
    return HistGradientBoostingRegressor(random_state=SEED, early_stopping=False, **params)


def env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return Path(value)


def input_columns(train: pd.DataFrame) -> list[str]:
    """The feature columns of train.csv make_features gets: every column but id and the targets
    (the 11 raw ones, plus any further column the data has, in file order)."""
    return [c for c in train.columns if c != ID and c not in TARGETS]


def load_data(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the public train.csv and test.csv and check their columns."""
    train = pd.read_csv(data_dir / "train.csv")
    test = pd.read_csv(data_dir / "test.csv")
    for name, frame, wanted in (("train.csv", train, (ID, *RAW_FEATURES, *TARGETS)),
                                ("test.csv", test, (ID, *RAW_FEATURES, *input_columns(train)))):
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise RuntimeError(f"unexpected data layout: {data_dir / name} lacks columns {missing}")
    return train, test


def load_make_features(workspace: Path) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Import make_features from the workspace's features.py (fresh, by path)."""
    path = workspace / FEATURES_FILE
    if not path.is_file():
        raise FeatureError(f"{path} not found: the workspace must hold {FEATURES_FILE} defining make_features(df)")
    if str(workspace) not in sys.path:
        sys.path.append(str(workspace))  # features.py may import its own helper modules
    spec = importlib.util.spec_from_file_location("workspace_features", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["workspace_features"] = module
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in the workspace
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:  # noqa: BLE001 - the agent's code: report its error clearly
        raise FeatureError(f"importing {FEATURES_FILE} failed:\n{_user_traceback(exc)}") from None
    finally:
        sys.dont_write_bytecode = saved
    function = getattr(module, "make_features", None)
    if not callable(function):
        raise FeatureError(f"{FEATURES_FILE} does not define a function make_features(df)")
    return function


def _user_traceback(exc: BaseException) -> str:
    """The last frames of a traceback (where the agent's code failed), at most ~1500 characters."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return text[-1500:].rstrip()


def build_features(make_features: Callable[[pd.DataFrame], pd.DataFrame], raw: pd.DataFrame,
                   label: str, columns: list[str]) -> pd.DataFrame:
    """Call make_features on the feature `columns` of one file; check and return a float frame."""
    try:
        frame = make_features(raw[columns].copy())
    except Exception as exc:  # noqa: BLE001 - the agent's code: report its error clearly
        raise FeatureError(f"make_features failed on {label}:\n{_user_traceback(exc)}") from None
    where = f"make_features({label})"
    if not isinstance(frame, pd.DataFrame):
        raise FeatureError(f"{where} must return a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) != len(raw):
        raise FeatureError(f"{where} returned {len(frame)} rows for {len(raw)} input rows (one row per input row)")
    if frame.shape[1] == 0:
        raise FeatureError(f"{where} returned no columns")
    if frame.shape[1] > MAX_FEATURES:
        raise FeatureError(f"{where} returned {frame.shape[1]} columns; at most {MAX_FEATURES} are allowed")
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise FeatureError(f"{where} returned duplicate column names")
    leaked = [c for c in names if c in TARGETS or c == ID]
    if leaked:
        raise FeatureError(f"{where} returned column(s) {leaked}: id and the targets are not features")
    bad = [c for c, dtype in zip(names, frame.dtypes)
           if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
           or isinstance(dtype, pd.CategoricalDtype)]
    if bad:
        raise FeatureError(f"{where}: columns must be numeric or boolean (one-hot encode categories); "
                           f"not numeric: {bad[:10]}")
    values = frame.to_numpy(dtype=np.float64)
    infinite = [names[j] for j in np.flatnonzero(np.isinf(values).any(axis=0))]
    if infinite:
        raise FeatureError(f"{where}: infinite values in column(s) {infinite[:10]} (NaN is allowed, inf is not)")
    return pd.DataFrame(values, columns=names)


def features_for(workspace: Path, train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    make_features = load_make_features(workspace)
    columns = input_columns(train)
    x_train = build_features(make_features, train, "train", columns)
    x_test = build_features(make_features, test, "test", columns)
    if list(x_train.columns) != list(x_test.columns):
        raise FeatureError("make_features returned different columns for train and test: "
                           f"{list(x_train.columns)[:20]} vs {list(x_test.columns)[:20]}")
    return x_train, x_test


def rmsle(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.log1p(y_pred) - np.log1p(y_true)) ** 2)))


def fit_model(config: dict[str, Any], x_fit: np.ndarray, y_fit: np.ndarray) -> HistGradientBoostingRegressor:
    """One target's fitted model (on log1p(target) with log_target)."""
    return make_model(config).fit(x_fit, np.log1p(y_fit) if config["log_target"] else y_fit)


def predict_with(config: dict[str, Any], model: HistGradientBoostingRegressor, x_new: np.ndarray) -> np.ndarray:
    """A fitted model's predictions on the target's scale (non-negative)."""
    predicted = model.predict(x_new)
    if config["log_target"]:
        predicted = np.expm1(predicted)
    return np.clip(predicted, 0.0, None)


def fit_predict(config: dict[str, Any], x_fit: np.ndarray, y_fit: np.ndarray, x_new: np.ndarray) -> np.ndarray:
    """Fit one target's model and predict new rows (non-negative)."""
    return predict_with(config, fit_model(config, x_fit, y_fit), x_new)


def cross_validate(config: dict[str, Any], x: np.ndarray, targets: dict[str, np.ndarray],
                   log: Any = None) -> dict[str, Any]:
    """Seeded K-fold CV: RMSLE per target and fold; returns means, the fold spread and bandgap MAE.
    `log` (an ExperimentLog) fits and times each model itself and records the fold."""
    folds = list(KFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED).split(x))
    per_fold = {t: [] for t in TARGETS}
    bandgap_mae = []
    for fold, (fit_rows, held_rows) in enumerate(folds):
        for name, y in targets.items():
            if log is None:
                predicted = fit_predict(config, x[fit_rows], y[fit_rows], x[held_rows])
            else:
                predicted = log.fold(fold, name, x, y, fit_rows, held_rows)
            per_fold[name].append(rmsle(y[held_rows], predicted))
            if name == "bandgap_energy_ev":
                bandgap_mae.append(float(np.mean(np.abs(predicted - y[held_rows]))))
    fold_means = np.mean([per_fold[t] for t in TARGETS], axis=0)
    return {
        "cv_mean_rmsle": round(float(np.mean(fold_means)), 6),
        "cv_rmsle": {t: round(float(np.mean(per_fold[t])), 6) for t in TARGETS},
        "cv_std": round(float(np.std(fold_means)), 6),
        "cv_bandgap_mae": round(float(np.mean(bandgap_mae)), 6),
    }


def run(config: Any, data_dir: Path, workspace: Path, evaluate: bool, writer: str) -> dict[str, Any]:
    """Validate `config`, optionally score it by CV, fit it on all of train and write
    submission.csv and metrics.json into `workspace`. Returns the tool's result."""
    resolved = validate_config(config)
    train, test = load_data(data_dir)
    log = None
    if evaluate and os.environ.get(OBSERVATION_ENV) == "full":  # the base tool stays exactly as it was
        log = report_module().ExperimentLog(_library(), resolved, train, test)
    with log.capturing() if log is not None else contextlib.nullcontext():  # features.py's warnings too
        x_train, x_test = features_for(workspace, train, test)
        dropped = check_drop_features(resolved.get(DROP_KEY, []), [str(c) for c in x_train.columns])
        if dropped:
            x_train, x_test = x_train.drop(columns=dropped), x_test.drop(columns=dropped)
        if log is not None:
            log.inputs(list(x_train.columns), dropped)
        targets = {t: train[t].to_numpy(dtype=np.float64) for t in TARGETS}
        scores, predictions = fit_all(resolved, x_train.to_numpy(), x_test.to_numpy(), targets, evaluate, log)
    submission = pd.DataFrame({ID: test[ID].to_numpy(), **predictions})
    cv = scores or {"cv_mean_rmsle": None, "cv_rmsle": None, "cv_std": None, "cv_bandgap_mae": None}
    metrics = {
        "metric": METRIC,
        **cv,
        "cv_folds": CV_FOLDS,
        "config": resolved,
        "features": list(x_train.columns),
        "n_features": int(x_train.shape[1]),
        "submission": SUBMISSION_FILE,
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "written_by": writer,
    }
    write_atomic(workspace / SUBMISSION_FILE, submission.to_csv(index=False))
    write_atomic(workspace / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    result = {**cv} if evaluate else {}
    result.update(config=resolved, n_features=metrics["n_features"], wrote=[SUBMISSION_FILE, METRICS_FILE])
    if log is not None:
        result["report"] = log.render(scores)
    return result


def fit_all(config: dict[str, Any], x: np.ndarray, x_new: np.ndarray, targets: dict[str, np.ndarray],
            evaluate: bool, log: Any = None) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
    """(CV scores or None, test predictions per target); with `log`, the same fits, measured."""
    with threadpool_limits(limits=1):
        if log is None:
            scores = cross_validate(config, x, targets) if evaluate else None
            return scores, {t: fit_predict(config, x, y, x_new) for t, y in targets.items()}
        scores = cross_validate(config, x, targets, log)
        predictions = {t: log.final_fit(t, x, y, x_new) for t, y in targets.items()}
        log.learning_curve(x, targets)
        return scores, predictions


def _library() -> SimpleNamespace:
    """What the experiment log trains and scores with: this module's own functions and constants."""
    return SimpleNamespace(fit_model=fit_model, predict_with=predict_with, rmsle=rmsle, make_model=make_model,
                           CV_FOLDS=CV_FOLDS, SEED=SEED, ID=ID, TARGETS=TARGETS)


def report_module() -> ModuleType:
    """nomadreport (next to this file), imported only when a report is asked for."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.append(here)
    import nomadreport
    return nomadreport


def train_and_evaluate(config: Any, data_dir: Path, workspace: Path) -> dict[str, Any]:
    """5-fold CV on the public train, then a fit on all of it; writes the submission and metrics."""
    return run(config, data_dir, workspace, evaluate=True, writer="train_and_evaluate")


def predict(config: Any, data_dir: Path, workspace: Path) -> dict[str, Any]:
    """A fit on all of the public train (no CV); writes the submission and metrics."""
    return run(config, data_dir, workspace, evaluate=False, writer="predict")


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a killed run never leaves a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def tool_main(name: str, action: Callable[[Any, Path, Path], dict[str, Any]]) -> int:
    """The tool protocol: {"config": {...}} as JSON on stdin, one JSON object on stdout.
    Exit 0 on success, 2 for invalid arguments or config, 1 for any other failure
    (including an error in the workspace's features.py)."""

    def fail(message: str, code: int) -> int:
        print(f"{name}: {message}", file=sys.stderr)
        return code

    text = sys.stdin.read()
    example = '{"config": {"learning_rate": 0.05, "max_iter": 300, "log_target": true}}'
    if not text.strip():
        return fail(f"no arguments on stdin; expected a JSON object like {example}", 2)
    try:
        args = json.loads(text)
    except json.JSONDecodeError as exc:
        return fail(f"stdin is not valid JSON: {exc}", 2)
    if not isinstance(args, dict) or "config" not in args:
        return fail(f"arguments must be a JSON object like {example}", 2)
    extra = sorted(set(args) - {"config"})
    if extra:
        return fail(f"unknown argument(s) {', '.join(extra)}; the only argument is config", 2)
    try:
        result = action(args["config"], env_path("CTXEVAL_DATA"), env_path("CTXEVAL_WORKSPACE"))
    except ConfigError as exc:
        return fail(f"invalid config: {exc}", 2)
    except FeatureError as exc:
        return fail(f"features.py: {exc}", 1)
    except Exception as exc:  # noqa: BLE001 - any other failure is reported, not raised
        return fail(f"{type(exc).__name__}: {exc}", 1)
    print(json.dumps(result))
    return 0
