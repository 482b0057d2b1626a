"""Read a preset-format YAML file as plain JSON data, checked against its JSON Schema.

Every problem is a PresetError naming the file and the JSON path (`$` for what the YAML reader
rejects, with line and column): not UTF-8, not YAML, a key given twice (PyYAML would keep the last
silently), data JSON cannot hold (dates, non-string keys, NaN, integers beyond 64 bits), or a
schema violation. The schema, policies/schemas/policy_preset.schema.json, is package data.
PyYAML and jsonschema are imported when a file is read, so importing the policies stays fast.
"""
from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PresetError

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "policy_preset.schema.json"
MAX_DEPTH = 64  # deeper documents are refused
MAX_VALUES = 100_000  # values with YAML aliases expanded: an alias bomb stops here
INT_LIMIT = 2 ** 63  # integers other JSON readers (and float()) can take
MAX_REPORTED = 10
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")
_MERGE_TAG = "tag:yaml.org,2002:merge"


@lru_cache(maxsize=None)
def preset_schema() -> dict[str, Any]:
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return schema


@lru_cache(maxsize=None)
def _validator_class() -> Any:
    """Draft 2020-12, except that 3.0 is no integer (JSON Schema says it is; range(3.0) fails)."""
    from jsonschema import Draft202012Validator, validators

    integers = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    return validators.extend(Draft202012Validator, type_checker=integers)


def path_step(part: Any) -> str:
    """One step of a JSON path: [3], .name, or ["any key"] (JSON-quoted, ASCII: safe to print)."""
    if isinstance(part, int) and not isinstance(part, bool):
        return f"[{part}]"
    return f".{part}" if isinstance(part, str) and _PLAIN_KEY.fullmatch(part) else f"[{json.dumps(str(part))}]"


@lru_cache(maxsize=None)
def _loader_class() -> Any:
    """A yaml.SafeLoader that refuses a key given twice in one mapping."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[tuple[str, Any]] = set()
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
                    continue
                if (key.tag, key.value) in seen:
                    raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                            f"duplicate key {key.value!r}", key.start_mark)
                seen.add((key.tag, key.value))
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def _load(path: Path) -> Any:
    """The YAML document; what cannot be read is one problem at `$`. OSError propagates."""
    import yaml

    try:
        return yaml.load(path.read_bytes().decode("utf-8"), Loader=_loader_class())
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte {exc.start}: {exc.reason})"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = f"not valid YAML ({where}): {getattr(exc, 'problem', None) or exc}"
    except RecursionError:
        problem = "not readable: nested too deeply"
    except ValueError as exc:  # a value YAML reads but Python refuses: 2001-13-45, a 5000-digit integer
        problem = f"not readable: {exc}"
    raise PresetError(path, [("$", " ".join(problem.split()))])


def _not_json(value: Any) -> str | None:
    """Why a scalar is no JSON value, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number"
    if isinstance(value, int) and not isinstance(value, bool) and not -INT_LIMIT <= value < INT_LIMIT:
        return f"integer out of the 64-bit range ({len(str(value))} digits)"
    if not isinstance(value, (str, int, float, bool, type(None))):
        return f"a YAML {type(value).__name__}, not a JSON value"
    return None


def data_problems(document: Any) -> list[tuple[str, str]]:
    """Where `document` is not plain JSON data (walked without recursion, aliases expanded up to MAX_VALUES)."""
    found: list[tuple[str, str]] = []
    pending, seen = [("$", document, 0)], 0
    while pending and len(found) < MAX_REPORTED:
        path, value, depth = pending.pop()
        seen += 1
        if seen > MAX_VALUES:
            return [*found, ("$", f"more than {MAX_VALUES} values (with YAML aliases expanded)")]
        if depth > MAX_DEPTH:
            found.append((path, f"nested deeper than {MAX_DEPTH} levels"))
        elif isinstance(value, dict):
            found += [(path, f"key {key!r} is not a string") for key in value if not isinstance(key, str)]
            pending += [(path + path_step(k), v, depth + 1) for k, v in value.items() if isinstance(k, str)]
        elif isinstance(value, list):
            pending += [(f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value)]
        elif (why := _not_json(value)) is not None:
            found.append((path, why))
    return sorted(found[:MAX_REPORTED])


def _describe(error: ValidationError) -> str:
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        return f"unknown field(s): {', '.join(repr(key) for key in error.instance if key not in known)}"
    return error.message


def schema_problems(document: Any) -> list[tuple[str, str]]:
    """Every violation of the preset schema, as (JSON path, message), sorted."""
    errors = _validator_class()(preset_schema()).iter_errors(document)
    return sorted(("$" + "".join(path_step(p) for p in e.absolute_path), _describe(e)) for e in errors)


def read_preset_file(path: Path) -> dict[str, Any]:
    """A preset-format file's document, valid against the schema; else a PresetError."""
    try:
        document = _load(path)
    except OSError as exc:
        raise PresetError(path, [("$", f"cannot read: {exc.strerror or exc}")]) from None
    problems = data_problems(document) or schema_problems(document)
    if problems:
        raise PresetError(path, problems)
    return document


__all__ = ["SCHEMA_PATH", "data_problems", "path_step", "preset_schema", "read_preset_file", "schema_problems"]
