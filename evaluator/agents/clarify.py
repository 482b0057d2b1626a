"""`clarify`: questions answered from the bundle's dataset context and its manifest, never from
private data. The answer is the few facts that best match the question."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..bundles.manifest import Bundle

MAX_FACTS = 4
_WORD = re.compile(r"[a-z0-9_]+")


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _flatten(f"{prefix}.{k}" if prefix else str(k), v)]
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return [(prefix, "; ".join(str(v) for v in value))]
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in _flatten(f"{prefix}[{i}]", v)]
    return [(prefix, str(value))]


class Clarifier:
    def __init__(self, bundle: Bundle, public_dir: Path | None):
        target = bundle.target
        self.facts: list[tuple[str, str]] = [
            ("metric", f"{target.metric} ({'higher' if target.maximize else 'lower'} is better)"),
            ("success rule", f"{target.success.rule}; target score {target.target_score()}; "
                             f"baseline {target.baseline}"),
            ("output", f"write {bundle.output_path} in the workspace (JSON Schema {bundle.output_schema_path.name})"),
            ("tools", ", ".join(f"{t.name}: {t.description[:160]}" for t in bundle.tools) or "none"),
            ("limits", f"steps {bundle.limits.max_steps}, wall seconds {bundle.limits.wall_seconds}"),
        ]
        context_file = (public_dir / bundle.data.context) if (public_dir and bundle.data and bundle.data.context) else None
        if context_file is not None and context_file.is_file():
            try:
                self.facts += _flatten("", json.loads(context_file.read_text()))
            except json.JSONDecodeError:
                self.facts.append(("dataset context", context_file.read_text()[:2000]))

    def answer(self, question: str) -> tuple[str, bool]:
        """(answer text, whether any fact matched)."""
        words = set(_WORD.findall(question.lower()))
        scored = []
        for index, (key, text) in enumerate(self.facts):
            overlap = len(words & set(_WORD.findall(f"{key} {text}".lower())))
            if overlap:
                scored.append((-overlap, index, key, text))
        if not scored:
            return ("No matching fact in the dataset context. Known topics: " +
                    ", ".join(sorted({k.split(".")[0] for k, _ in self.facts})), False)
        return "\n".join(f"{key}: {text}" for _, _, key, text in sorted(scored)[:MAX_FACTS]), True
