"""Load the project's JSON Schemas, read input documents as plain JSON data, and turn validation
errors into file + JSON-path reports."""
from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from .errors import ValidationFailed, Violation


SCHEMAS = resources.files(__package__) / "schemas"  # package data: ships in the wheel
_CHECKED: set[int] = set()  # the project's schemas (kept for good by the cache): checked once


@lru_cache(maxsize=None)
def project_schema(name: str) -> dict[str, Any]:
    """A schema from evaluator/schemas/, by short name: "bundle" -> bundle.schema.json."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    _CHECKED.add(id(schema))
    return schema


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")


def json_path_step(part: Any) -> str:
    """One step of a JSON path: [3], .name, or ["any key"] (JSON-quoted, ASCII: safe to print)."""
    if isinstance(part, int) and not isinstance(part, bool):
        return f"[{part}]"
    return f".{part}" if isinstance(part, str) and _PLAIN_KEY.fullmatch(part) else f"[{json.dumps(str(part))}]"


def _json_path(error: ValidationError) -> str:
    return "$" + "".join(json_path_step(part) for part in error.absolute_path)


def _describe(error: ValidationError) -> str:
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known, patterns = error.schema.get("properties", {}), error.schema.get("patternProperties", {})
        extra = [key for key in error.instance if key not in known
                 and not any(re.search(p, key) for p in patterns if isinstance(key, str))]
        return f"unknown field(s): {', '.join(repr(key) for key in extra)}"
    return error.message


# JSON Schema counts 3.0 as an integer; Python code reading an input file does not (range(3.0)).
_StrictIntegers = validators.extend(Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)))


def violations(instance: Any, schema: dict[str, Any], file: str, strict_integers: bool = False) -> list[Violation]:
    """Every violation of `schema` by `instance`, sorted by JSON path; `strict_integers`: 3.0 is
    not an integer (for input files whose integers Python code uses as such)."""
    if id(schema) not in _CHECKED:
        Draft202012Validator.check_schema(schema)
    validator = (_StrictIntegers if strict_integers else Draft202012Validator)(schema)
    found = [Violation(file, _json_path(e), _describe(e)) for e in validator.iter_errors(instance)]
    return sorted(found, key=lambda v: (v.json_path, v.message))


def validate(instance: Any, schema: dict[str, Any] | str, file: str | Path, strict_integers: bool = False) -> None:
    """Raise ValidationFailed listing every violation; `schema` may name a project schema."""
    resolved = project_schema(schema) if isinstance(schema, str) else schema
    found = violations(instance, resolved, str(file), strict_integers)
    if found:
        raise ValidationFailed(found)


def schema_errors(schema: dict[str, Any], file: str) -> list[Violation]:
    """Violations of the JSON Schema meta-schema by a bundle-supplied schema (regexes compiled too)."""
    validator = Draft202012Validator(Draft202012Validator.META_SCHEMA,
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    found = [Violation(file, _json_path(e), _describe(e)) for e in validator.iter_errors(schema)]
    return sorted(found, key=lambda v: (v.json_path, v.message))


# -- input documents -------------------------------------------------------------------------
MAX_DEPTH = 64  # deeper documents are refused before a validator recurses into them
MAX_VALUES = 100_000  # values in one YAML document with its aliases expanded (an alias bomb stops here)
INT_LIMIT = 2 ** 63  # integers beyond 64 bits: other JSON readers (and float()) cannot take them
MAX_REPORTED = 10


def data_violations(instance: Any, file: str, max_values: int | None = None) -> list[Violation]:
    """Where `instance` is not plain JSON data: objects with string keys, arrays, strings, finite
    numbers (integers within 64 bits), booleans and null. YAML also gives dates, sets, bytes, other
    keys, .nan/.inf, cycles and alias bombs; Python's JSON reader takes NaN, Infinity and any integer."""
    found: list[Violation] = []
    seen = 0

    def walk(value: Any, path: str, depth: int) -> None:
        nonlocal seen
        seen += 1
        if len(found) >= MAX_REPORTED or (max_values is not None and seen > max_values):
            return
        if depth > MAX_DEPTH:
            found.append(Violation(file, path, f"nested deeper than {MAX_DEPTH} levels"))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str):
                    walk(item, path + json_path_step(key), depth + 1)
                else:
                    found.append(Violation(file, path, f"key {key!r} is not a string"))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]", depth + 1)
        elif isinstance(value, float) and not math.isfinite(value):
            found.append(Violation(file, path, f"{value} is not a finite number"))
        elif isinstance(value, int) and not isinstance(value, bool) and not -INT_LIMIT <= value < INT_LIMIT:
            found.append(Violation(file, path, f"integer out of the 64-bit range ({len(str(value))} digits)"))
        elif not isinstance(value, (str, int, float, bool, type(None))):
            found.append(Violation(file, path, f"a YAML {type(value).__name__}, not a JSON value"))

    walk(instance, "$", 0)
    if max_values is not None and seen > max_values:
        found.append(Violation(file, "$", f"more than {max_values} values (with YAML aliases expanded)"))
    return found


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader refusing a key given twice in one mapping (PyYAML keeps the last, silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if (key_node.tag, key_node.value) in seen:
                    raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                            f"duplicate key {key_node.value!r}",
                                                            key_node.start_mark)
                seen.add((key_node.tag, key_node.value))
        return super().construct_mapping(node, deep)


def read_yaml(path: Path, file: str | None = None) -> Any:
    """A YAML (or JSON) input file as plain JSON data. A file that is not UTF-8, not YAML, repeats a
    key or holds no JSON data raises ValidationFailed naming `file` (default: the path) and the JSON
    path ("$" with line and column for what the YAML reader rejects). OSError propagates."""
    file = file or str(path)
    try:
        text = path.read_bytes().decode("utf-8")
        document = yaml.load(text, Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte {exc.start}: {exc.reason})"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = " ".join(f"not valid YAML ({where}): {getattr(exc, 'problem', None) or exc}".split())
    except RecursionError:
        problem = "not readable: nested too deeply"
    except ValueError as exc:  # a value YAML reads but Python refuses: 2001-13-45, a 5000-digit integer
        problem = " ".join(f"not readable: {exc}".split())
    else:
        found = data_violations(document, file, MAX_VALUES)
        if found:
            raise ValidationFailed(found)
        return document
    raise ValidationFailed([Violation(file, "$", problem)])
