"""Where an experiment's logs and summary go: OUTPUT_DIR/{requests.jsonl,responses.jsonl,summary.json}."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from logging_utils import JsonlWriter, write_json_atomic

REQUESTS_FILE = "requests.jsonl"
RESPONSES_FILE = "responses.jsonl"
SUMMARY_FILE = "summary.json"


class ExperimentStorage:
    """Opens (truncating) the two JSONL logs; writes the summary at the end."""

    def __init__(self, output_dir: str | Path):
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        stale = self.output_dir / SUMMARY_FILE
        if stale.exists():
            stale.unlink()
        self.requests = JsonlWriter(self.output_dir / REQUESTS_FILE)
        self.responses = JsonlWriter(self.output_dir / RESPONSES_FILE)

    def log_request(self, record: dict[str, Any]) -> None:
        self.requests.write(record)

    def log_response(self, record: dict[str, Any]) -> None:
        self.responses.write(record)

    def write_summary(self, summary: dict[str, Any]) -> Path:
        path = self.output_dir / SUMMARY_FILE
        write_json_atomic(path, summary)
        return path

    def close(self) -> None:
        self.requests.close()
        self.responses.close()

    def __enter__(self) -> "ExperimentStorage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_summary(output_dir: str | Path) -> dict[str, Any]:
    """OUTPUT_DIR/summary.json; FileNotFoundError or ValueError with a clear message."""
    path = Path(output_dir) / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {SUMMARY_FILE} in {output_dir} (run the experiment first)")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(summary, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return summary
