"""Where an experiment's logs and summary go: OUTPUT_DIR/{requests.jsonl,responses.jsonl,summary.json}."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REQUESTS_FILE = "requests.jsonl"
RESPONSES_FILE = "responses.jsonl"
SUMMARY_FILE = "summary.json"


class ExperimentStorage:
    """The experiment's log files in OUTPUT_DIR (created if missing)."""

    def __init__(self, output_dir: str | Path):
        self.output_dir = Path(output_dir)
        # TODO: create the folder and open the two JSONL logs (logging_utils.JsonlWriter).

    def log_request(self, record: dict[str, Any]) -> None:
        raise NotImplementedError("TODO: log_request")

    def log_response(self, record: dict[str, Any]) -> None:
        raise NotImplementedError("TODO: log_response")

    def write_summary(self, summary: dict[str, Any]) -> Path:
        raise NotImplementedError("TODO: write_summary")

    def close(self) -> None:
        pass

    def __enter__(self) -> "ExperimentStorage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_summary(output_dir: str | Path) -> dict[str, Any]:
    """OUTPUT_DIR/summary.json as a dict."""
    # TODO
    raise NotImplementedError("TODO: load_summary")
