"""The JSON Schema and description a bundle.yaml declares for a tabular task's tool.

bundle.yaml is static YAML; these functions are its source of truth (the bundles' tests compare
the two). `python3 -m ctxeval_tabular.schema TOOLS_DIR [--drop-features N]` prints the config
schema for a bundle author to paste.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .params import DROP_KEY, Param
from .task import TabularTask, load_task


def _param_schema(param: Param) -> dict[str, Any]:
    if param.kind == "choice":
        return {"enum": [*param.choices, *([None] if param.nullable else [])]}
    kind = "integer" if param.kind == "int" else "number"
    return {"type": [kind, "null"] if param.nullable else kind, "minimum": param.low, "maximum": param.high}


def _shared(task: TabularTask) -> dict[str, list[tuple[str, Param]]]:
    """Parameter name -> the (family, spec) pairs that have it, in the task's family order."""
    found: dict[str, list[tuple[str, Param]]] = {}
    for family, params in task.params().items():
        for name, param in params.items():
            found.setdefault(name, []).append((family, param))
    return found


def property_schemas(task: TabularTask) -> dict[str, dict[str, Any]]:
    """One property per parameter name; families sharing a name must share its type and range
    (defaults and meanings may differ: the description says which family means what)."""
    properties: dict[str, dict[str, Any]] = {}
    for name, pairs in _shared(task).items():
        shapes = {json.dumps(_param_schema(p)) for _, p in pairs}
        if len(shapes) > 1:
            raise ValueError(f"parameter {name!r} has different ranges in {', '.join(f for f, _ in pairs)}")
        by_help: dict[str, list[str]] = {}
        for family, param in pairs:
            by_help.setdefault(param.help, []).append(family)
        text = "; ".join(f"{', '.join(families)}: {help_}" for help_, families in by_help.items())
        properties[name] = {**_param_schema(pairs[0][1]), "description": text + "."}
    return properties


def config_schema(task: TabularTask, drop_features: int | None = None) -> dict[str, Any]:
    """The tool's `config` schema; `drop_features`: the most columns it may name (None: no key)."""
    model = {"type": "string", "enum": list(task.families),
             "description": "The model family: " + "; ".join(f"{n}: {f.summary}" for n, f in task.families.items()) + "."}
    properties: dict[str, Any] = {"model": model, **property_schemas(task)}
    if drop_features is not None:
        properties[DROP_KEY] = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True,
                                "maxItems": drop_features,
                                "description": "Feature columns left out of training and prediction (default: none)."}
    return {"type": "object",
            "description": "A model configuration: model plus any of that family's hyper-parameters (missing ones "
                           "take their defaults; another family's parameters are rejected).",
            "properties": properties, "required": ["model"], "additionalProperties": False}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="print a tabular task's config schema as JSON")
    parser.add_argument("tools_dir", type=Path)
    parser.add_argument("--drop-features", type=int, default=None, help="allow drop_features, at most N columns")
    args = parser.parse_args(argv)
    print(json.dumps(config_schema(load_task(args.tools_dir), args.drop_features), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
