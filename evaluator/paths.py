"""Where things live: the project checkout and ctxeval's cache (the JSON Schemas are package
data: evaluator/jsonschemas.py)."""
from __future__ import annotations

import os
from pathlib import Path

from . import settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLES_DIR = PROJECT_ROOT / "bundles"
DEFAULT_RUNS_DIR = PROJECT_ROOT / "runs"
# a checkout (or an editable install of one), not a wheel installed into site-packages
IN_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "evaluator").is_dir()


def project_or_cwd(name: str) -> Path:
    """<project>/name in a checkout; ./name where an installed ctxeval is run (never site-packages)."""
    return PROJECT_ROOT / name if IN_CHECKOUT else Path.cwd() / name


def cache_dir() -> Path:
    """Prepared data and other regenerable state; override with CTXEVAL_CACHE_DIR."""
    base = settings.get("CTXEVAL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ctxeval")
    return Path(base)


def runs_dir() -> Path:
    """Where runs are written and looked up: CTXEVAL_RUNS_DIR, else <project>/runs in a checkout and
    ./runs for an installed ctxeval."""
    return Path(settings.get("CTXEVAL_RUNS_DIR") or project_or_cwd("runs"))
