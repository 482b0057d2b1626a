"""A tabular task as a bundle describes it in `tools/tabular_task.json`."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .families import FAMILIES, Family
from .metrics import METRICS, Metric
from .params import Param

TASK_FILE = "tabular_task.json"
OBSERVATION_ENV = "TABULAR_OBSERVATION"  # "full": the tool's result gains the experiment log `report`


@dataclass(frozen=True)
class TabularTask:
    name: str
    kind: str  # classification | regression
    metric: Metric
    families: dict[str, Family]  # the families the tool accepts, in the task file's order
    cv_folds: int = 5
    labels: tuple[Any, ...] = ()  # classification: the classes, in order

    @property
    def score_key(self) -> str:
        """The key of the cross-validated score in the tool's result and metrics.json."""
        return f"cv_{self.metric.name}"

    def params(self) -> dict[str, dict[str, Param]]:
        return {name: family.params for name, family in self.families.items()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = TASK_FILE) -> "TabularTask":
        kind, metric = raw.get("kind"), METRICS.get(raw.get("metric", ""))
        if kind not in FAMILIES:
            raise ValueError(f"{where}: kind must be one of {', '.join(FAMILIES)}, got {kind!r}")
        if metric is None or metric.kind != kind:
            known = [m.name for m in METRICS.values() if m.kind == kind]
            raise ValueError(f"{where}: metric must be one of {', '.join(known)}, got {raw.get('metric')!r}")
        names = list(raw.get("families") or [])
        unknown = [n for n in names if n not in FAMILIES[kind]]
        if not names or unknown:
            raise ValueError(f"{where}: families must name some of {', '.join(FAMILIES[kind])} (unknown: {unknown})")
        return cls(name=str(raw.get("name", "")), kind=kind, metric=metric,
                   families={n: FAMILIES[kind][n] for n in names}, cv_folds=int(raw.get("cv_folds", 5)),
                   labels=tuple(raw.get("labels", ())))


def load_task(folder: Path) -> TabularTask:
    """The task of a bundle's tools folder."""
    path = Path(folder) / TASK_FILE
    return TabularTask.from_dict(json.loads(path.read_text()), str(path))
