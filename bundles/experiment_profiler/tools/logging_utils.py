"""Small helpers for the profiler's log files.

    from logging_utils import JsonlWriter, read_jsonl, write_json_atomic
    with JsonlWriter(out_dir / "requests.jsonl") as log:   # truncates the file
        log.write({"sequence": 0, ...})                    # one JSON object per line, flushed
    records = read_jsonl(out_dir / "requests.jsonl")
    write_json_atomic(out_dir / "summary.json", summary)    # temp file + rename
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def utc_timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class JsonlWriter:
    """Append JSON objects, one per line, to a file it creates (or truncates)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("w", encoding="utf-8")
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        if not isinstance(record, dict):
            raise TypeError(f"a JSONL record must be a dict, got {type(record).__name__}")
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.count += 1

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every non-blank line of a JSONL file, parsed (ValueError names the bad line)."""
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} line {number}: not JSON: {exc}") from None
    return records


def write_json_atomic(path: str | Path, document: Any) -> None:
    """Write JSON (indented) via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
