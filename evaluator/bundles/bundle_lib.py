"""ctxeval's bundle library (evaluator/bundle_lib/, README there), seen from the host: its folder,
the variable and mount that give it to a bundle's programs, and the bundle's identity, which
covers the library when the bundle uses it (`bundle_lib: true`): its tools, grader and data stage
behave as the library does.

Like the grading helper, the library is mounted, never built into an image: changing it rebuilds
nothing, and it reaches a sandbox read-only and root's.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..hashing import hash_paths, hash_tree
from .manifest import Bundle

BUNDLE_LIB_DIR = Path(__file__).resolve().parents[1] / "bundle_lib"
BUNDLE_LIB_ENV = "CTXEVAL_BUNDLE_LIB"
BUNDLE_LIB_MOUNT = "/opt/ctxeval/lib"


def library_hash() -> str:
    return hash_tree(BUNDLE_LIB_DIR)


def library_extra(bundle: Bundle) -> list[str]:
    """The line a hash of something the bundle's programs produce adds for the library ([] when unused)."""
    return [f"bundle_lib {library_hash()}"] if bundle.bundle_lib else []


def bundle_hash(bundle: Bundle) -> str:
    """The bundle's recorded identity: its folder, and the library when it uses it (a bundle that
    does not has the hash of its folder alone, as before the library existed)."""
    if not bundle.bundle_lib:
        return hash_tree(bundle.root)
    return hash_paths([bundle.root], bundle.root, extra=library_extra(bundle))


def data_stage_environment(bundle: Bundle) -> dict[str, str] | None:
    """The environment of the bundle's host-side data stage: the library named (and no bytecode
    written into it) when the bundle uses it; None (inherit) otherwise."""
    if not bundle.bundle_lib:
        return None
    return {**os.environ, BUNDLE_LIB_ENV: str(BUNDLE_LIB_DIR), "PYTHONDONTWRITEBYTECODE": "1"}
