"""Bundle variants: `bundles/toy@long` is the bundle folder `bundles/toy` with the overrides of
its manifest's `variants.long` applied.

Each key a variant gives replaces the base manifest's whole key, except `limits` and `target`,
which are merged one level deep. Violations found in the merged manifest are reported at the
JSON path of the variant key they came from (e.g. `$.variants.long.tools[0].command`).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ValidationFailed, Violation
from .manifest import VARIANT_SEPARATOR

MERGED_ONE_LEVEL = ("limits", "target")
_TOP_KEY = re.compile(r"^\$\.([A-Za-z0-9_]+)(.*)$", re.DOTALL)
_SUB_KEY = re.compile(r"^\.([A-Za-z0-9_]+)")

PathMap = Callable[[str], str]


def split_variant(path: str | Path) -> tuple[Path, str | None]:
    """`bundles/toy@long` -> (bundles/toy, "long"); `bundles/toy` -> (bundles/toy, None). The
    last `@` of the last path component separates the variant; a path that exists as written
    (a folder whose name holds `@`) is never split."""
    given = Path(path)
    if VARIANT_SEPARATOR not in given.name:
        return given, None
    try:
        if given.exists():
            return given, None
    except (OSError, ValueError):  # name too long, NUL byte: let the loader report it
        pass
    base, _, variant = given.name.rpartition(VARIANT_SEPARATOR)
    return (given.with_name(base), variant) if base else (given, None)


def variant_names(raw: dict[str, Any]) -> tuple[str, ...]:
    return tuple(raw.get("variants") or {})


def apply_variant(raw: dict[str, Any], name: str, file: str) -> tuple[dict[str, Any], PathMap]:
    """The merged manifest of variant `name` (without `variants`) and the map from its JSON paths
    to the manifest's. Raises ValidationFailed for an unknown variant."""
    known = variant_names(raw)
    if name not in known:
        listing = f"known: {', '.join(known)}" if known else "the manifest declares no variants"
        raise ValidationFailed([Violation(file, "$.variants", f"unknown variant {name!r} ({listing})")])
    overrides: dict[str, Any] = raw["variants"][name]
    merged = {key: value for key, value in raw.items() if key != "variants"}
    for key, value in overrides.items():
        merged[key] = {**raw.get(key, {}), **value} if key in MERGED_ONE_LEVEL else value
    return merged, variant_path_map(name, overrides)


def variant_path_map(name: str, overrides: dict[str, Any]) -> PathMap:
    """JSON path in the merged manifest -> the path in bundle.yaml where that value was written."""
    prefix = f"$.variants.{name}"

    def where(json_path: str) -> str:
        match = _TOP_KEY.match(json_path)
        if match is None or match.group(1) not in overrides:
            return json_path
        key, rest = match.groups()
        if key in MERGED_ONE_LEVEL and rest:
            sub = _SUB_KEY.match(rest)
            if sub is None or sub.group(1) not in overrides[key]:
                return json_path  # a key the variant did not set: the base's
        return f"{prefix}.{key}{rest}"

    return where


def remap(found: list[Violation], where: PathMap) -> list[Violation]:
    return [Violation(v.file, where(v.json_path), v.message) for v in found]
