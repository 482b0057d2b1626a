"""The model families a tabular task's tool accepts: their hyper-parameters and estimators.

Every estimator is seeded and single-threaded. Linear models, k-NN and SVMs standardise the
features first (a pipeline with StandardScaler); trees and boosting take them as they are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sklearn import ensemble, linear_model, neighbors, svm, tree
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .params import DROP_KEY, Param

SEED = 0
CLASSIFICATION, REGRESSION = "classification", "regression"

MAX_DEPTH = Param("int", None, 1, 50, nullable=True, help="maximum tree depth, null = unlimited (default null)")
MIN_SAMPLES_LEAF = Param("int", 1, 1, 100, help="minimum samples per leaf (default 1)")
CLASS_WEIGHT = Param("choice", None, choices=("balanced",), nullable=True,
                     help='"balanced" weights classes inversely to their frequency, null = equal (default null)')
N_ESTIMATORS = Param("int", 100, 10, 300, help="number of trees (default 100)")
LEARNING_RATE = Param("float", 0.1, 0.01, 1.0, help="shrinkage (default 0.1)")
HIST_PARAMS = {
    "max_iter": Param("int", 100, 10, 1000, help="boosting rounds (default 100)"),
    "learning_rate": LEARNING_RATE,
    "max_depth": MAX_DEPTH,
    "max_leaf_nodes": Param("int", 31, 2, 128, help="maximum leaves per tree (default 31)"),
    "min_samples_leaf": Param("int", 20, 1, 100, help="minimum samples per leaf (default 20)"),
    "l2_regularization": Param("float", 0.0, 0.0, 100.0, help="L2 penalty on leaf values (default 0)"),
}
KNN_PARAMS = {
    "n_neighbors": Param("int", 5, 1, 100, help="number of neighbours (default 5)"),
    "weights": Param("choice", "uniform", choices=("uniform", "distance"), help="neighbour weighting (default uniform)"),
}
SVM_PARAMS = {
    "C": Param("float", 1.0, 0.0001, 10000.0, help="inverse regularisation strength: penalty of the error term (default 1.0)"),
    "kernel": Param("choice", "rbf", choices=("rbf", "linear", "poly"), help="kernel (default rbf)"),
    "gamma": Param("float", None, 0.0001, 10.0, nullable=True,
                   help="kernel coefficient, null = 1 / (n_features * variance) (default null)"),
}


@dataclass(frozen=True)
class Family:
    """A model family: its hyper-parameters and how to build the estimator from a resolved config."""

    params: dict[str, Param]
    build: Callable[[dict[str, Any]], Any]
    summary: str


def _scaled(estimator: Any) -> Any:
    return make_pipeline(StandardScaler(), estimator)


def _svm_kwargs(p: dict[str, Any]) -> dict[str, Any]:
    return {**p, "gamma": "scale" if p["gamma"] is None else p["gamma"]}


CLASSIFIERS: dict[str, Family] = {
    "logistic_regression": Family(
        {"C": Param("float", 1.0, 0.0001, 10000.0, help="inverse regularisation strength (default 1.0; smaller = stronger)"),
         "max_iter": Param("int", 1000, 10, 1000, help="solver iterations (default 1000)"),
         "class_weight": CLASS_WEIGHT},
        lambda p: _scaled(linear_model.LogisticRegression(**p)), "logistic regression on standardised features"),
    "decision_tree": Family(
        {"max_depth": MAX_DEPTH, "min_samples_leaf": MIN_SAMPLES_LEAF,
         "criterion": Param("choice", "gini", choices=("gini", "entropy"), help="split criterion (default gini)"),
         "class_weight": CLASS_WEIGHT},
        lambda p: tree.DecisionTreeClassifier(random_state=SEED, **p), "one decision tree"),
    "random_forest": Family(
        {"n_estimators": N_ESTIMATORS, "max_depth": MAX_DEPTH, "min_samples_leaf": MIN_SAMPLES_LEAF,
         "max_features": Param("choice", "sqrt", choices=("sqrt", "log2"), nullable=True,
                               help="features considered per split, null = all (default sqrt)"),
         "class_weight": CLASS_WEIGHT},
        lambda p: ensemble.RandomForestClassifier(random_state=SEED, n_jobs=1, **p), "a random forest"),
    "hist_gradient_boosting": Family(
        {**HIST_PARAMS, "class_weight": CLASS_WEIGHT},
        lambda p: ensemble.HistGradientBoostingClassifier(random_state=SEED, early_stopping=False, **p),
        "histogram gradient boosting"),
    "knn": Family(KNN_PARAMS, lambda p: _scaled(neighbors.KNeighborsClassifier(n_jobs=1, **p)),
                  "k nearest neighbours on standardised features"),
    "svm": Family({**SVM_PARAMS, "class_weight": CLASS_WEIGHT},
                  lambda p: _scaled(svm.SVC(**_svm_kwargs(p))), "a support vector classifier on standardised features"),
}

REGRESSORS: dict[str, Family] = {
    "ridge": Family({"alpha": Param("float", 1.0, 0.0001, 10000.0, help="L2 penalty (default 1.0)")},
                    lambda p: _scaled(linear_model.Ridge(**p)), "ridge regression on standardised features"),
    "lasso": Family({"alpha": Param("float", 1.0, 0.0001, 10000.0, help="L1 penalty (default 1.0)")},
                    lambda p: _scaled(linear_model.Lasso(max_iter=10000, **p)), "lasso on standardised features"),
    "decision_tree": Family({"max_depth": MAX_DEPTH, "min_samples_leaf": MIN_SAMPLES_LEAF},
                            lambda p: tree.DecisionTreeRegressor(random_state=SEED, **p), "one regression tree"),
    "random_forest": Family(
        {"n_estimators": N_ESTIMATORS, "max_depth": MAX_DEPTH, "min_samples_leaf": MIN_SAMPLES_LEAF,
         "max_features": Param("choice", None, choices=("sqrt", "log2"), nullable=True,
                               help="features considered per split, null = all (default null)")},
        lambda p: ensemble.RandomForestRegressor(random_state=SEED, n_jobs=1, **p), "a random forest"),
    "gradient_boosting": Family(
        {"n_estimators": N_ESTIMATORS, "learning_rate": LEARNING_RATE,
         "max_depth": Param("int", 3, 1, 50, nullable=True, help="depth of each tree, null = unlimited (default 3)"),
         "subsample": Param("float", 1.0, 0.1, 1.0, help="fraction of rows per tree (default 1.0)")},
        lambda p: ensemble.GradientBoostingRegressor(random_state=SEED, **p), "gradient boosting"),
    "hist_gradient_boosting": Family(
        HIST_PARAMS, lambda p: ensemble.HistGradientBoostingRegressor(random_state=SEED, early_stopping=False, **p),
        "histogram gradient boosting"),
    "knn": Family(KNN_PARAMS, lambda p: _scaled(neighbors.KNeighborsRegressor(n_jobs=1, **p)),
                  "k nearest neighbours on standardised features"),
    "svm": Family({**SVM_PARAMS, "epsilon": Param("float", 0.1, 0.0, 100.0, help="width of the no-penalty tube (default 0.1)")},
                  lambda p: _scaled(svm.SVR(**_svm_kwargs(p))), "support vector regression on standardised features"),
}

FAMILIES = {CLASSIFICATION: CLASSIFIERS, REGRESSION: REGRESSORS}


def make_model(kind: str, config: dict[str, Any]) -> Any:
    """The unfitted estimator of a resolved config of a task of `kind`."""
    params = {k: v for k, v in config.items() if k not in ("model", DROP_KEY)}
    return FAMILIES[kind][config["model"]].build(params)
