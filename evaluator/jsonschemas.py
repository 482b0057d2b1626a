"""Load the project's JSON Schemas and turn validation errors into file + JSON-path reports."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .errors import ValidationFailed, Violation
from .paths import SCHEMAS_DIR


@lru_cache(maxsize=None)
def project_schema(name: str) -> dict[str, Any]:
    """A schema from schemas/, by short name: "bundle" -> schemas/bundle.schema.json."""
    return json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text())


def _json_path(error: ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _describe(error: ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"unknown field(s): {error.message.split('(')[-1].rstrip(')')}"
    return error.message


def violations(instance: Any, schema: dict[str, Any], file: str) -> list[Violation]:
    """Every violation of `schema` by `instance`, sorted by JSON path."""
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    found = [Violation(file, _json_path(e), _describe(e)) for e in validator.iter_errors(instance)]
    return sorted(found, key=lambda v: (v.json_path, v.message))


def validate(instance: Any, schema: dict[str, Any] | str, file: str | Path) -> None:
    """Raise ValidationFailed listing every violation; `schema` may name a project schema."""
    resolved = project_schema(schema) if isinstance(schema, str) else schema
    found = violations(instance, resolved, str(file))
    if found:
        raise ValidationFailed(found)


def schema_errors(schema: dict[str, Any], file: str) -> list[Violation]:
    """Violations of the JSON Schema meta-schema by a bundle-supplied schema."""
    meta = Draft202012Validator.META_SCHEMA
    return violations(schema, meta, file)
