"""Where things live: the project checkout, its schemas, and ctxeval's cache."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
BUNDLES_DIR = PROJECT_ROOT / "bundles"
DEFAULT_RUNS_DIR = PROJECT_ROOT / "runs"


def cache_dir() -> Path:
    """Prepared data and other regenerable state; override with CTXEVAL_CACHE_DIR."""
    base = os.environ.get("CTXEVAL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ctxeval")
    return Path(base)


def runs_dir() -> Path:
    return Path(os.environ.get("CTXEVAL_RUNS_DIR") or DEFAULT_RUNS_DIR)
