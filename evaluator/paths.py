"""Where things live: the project checkout and ctxeval's cache (the JSON Schemas are package
data: evaluator/jsonschemas.py)."""
from __future__ import annotations

import os
from pathlib import Path

from . import settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLES_DIR = PROJECT_ROOT / "bundles"
DEFAULT_RUNS_DIR = PROJECT_ROOT / "runs"


def cache_dir() -> Path:
    """Prepared data and other regenerable state; override with CTXEVAL_CACHE_DIR."""
    base = settings.get("CTXEVAL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ctxeval")
    return Path(base)


def runs_dir() -> Path:
    """Where runs are written and looked up; override with CTXEVAL_RUNS_DIR."""
    return Path(settings.get("CTXEVAL_RUNS_DIR") or DEFAULT_RUNS_DIR)
