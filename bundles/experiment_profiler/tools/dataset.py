"""Load the evaluation dialogues (dialogues.json).

    from dataset import load_dialogues
    dialogues = load_dialogues("/path/to/dialogues.json")   # list[Dialogue], in file order
    by_id = {d.id: d for d in dialogues}

A Dialogue has id, system, user, required_facts (a tuple of strings a good answer contains)
and expect_refusal (True for a prompt the model must refuse).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "CTXEVAL_DATA"
DIALOGUES_FILE = "dialogues.json"


class DatasetError(ValueError):
    """The dataset file is missing or malformed; the message says where."""


@dataclass(frozen=True)
class Dialogue:
    id: str
    system: str
    user: str
    required_facts: tuple[str, ...]
    expect_refusal: bool


def default_dataset_path() -> Path:
    """$CTXEVAL_DATA/dialogues.json."""
    if not os.environ.get(DATA_ENV):
        raise DatasetError(f"{DATA_ENV} is not set")
    return Path(os.environ[DATA_ENV]) / DIALOGUES_FILE


def load_dialogues(path: str | Path | None = None) -> list[Dialogue]:
    """The dialogues of a dialogues.json file, in file order; ids are unique."""
    path = Path(path) if path is not None else default_dataset_path()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read dataset {path}: {exc}") from None
    items = document.get("dialogues") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise DatasetError(f"{path}: expected an object with a 'dialogues' list")
    dialogues: list[Dialogue] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"{path}: dialogues[{i}]"
        if not isinstance(item, dict):
            raise DatasetError(f"{where} is not an object")
        for key in ("id", "system", "user"):
            if not isinstance(item.get(key), str):
                raise DatasetError(f"{where}.{key} must be a string")
        facts = item.get("required_facts", [])
        if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
            raise DatasetError(f"{where}.required_facts must be a list of strings")
        refusal = item.get("expect_refusal", False)
        if not isinstance(refusal, bool):
            raise DatasetError(f"{where}.expect_refusal must be true or false")
        if item["id"] in seen:
            raise DatasetError(f"{where}: duplicate id {item['id']!r}")
        seen.add(item["id"])
        dialogues.append(Dialogue(item["id"], item["system"], item["user"], tuple(facts), refusal))
    return dialogues


def dialogues_by_id(dialogues: list[Dialogue]) -> dict[str, Dialogue]:
    return {d.id: d for d in dialogues}
