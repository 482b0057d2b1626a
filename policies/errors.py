"""The errors of the policies package. They are ValueErrors (policies sit below the evaluator and
know nothing of its CtxevalError); the evaluator turns them into its own where a user sees them."""
from __future__ import annotations

from pathlib import Path


class PresetError(ValueError):
    """A preset / policy file that does not hold: every problem as `file: $.json.path: message`."""

    def __init__(self, file: str | Path, problems: list[tuple[str, str]]):
        self.file = str(file)
        self.problems = problems
        super().__init__("\n".join(f"{self.file}: {path}: {message}" for path, message in problems))


__all__ = ["PresetError"]
