"""The grading helper graders import (evaluator/grading_lib/ctxeval_grading.py, standard library
only), seen from the host: its folder, the variable and mount that give it to the grading sandbox,
and the grader's identity, which covers it since a grade depends on it as much as on grade.py.

The helper is mounted at grade time, never built into an image: changing it rebuilds nothing.
"""
from __future__ import annotations

from pathlib import Path

from ..hashing import hash_paths, hash_tree
from .bundle_lib import library_extra
from .manifest import Bundle

GRADING_LIB_DIR = Path(__file__).resolve().parents[1] / "grading_lib"
GRADING_LIB_ENV = "CTXEVAL_GRADING_LIB"
GRADING_LIB_MOUNT = "/grading/lib"


def grader_hash(bundle: Bundle) -> str:
    """What grades a bundle: its grader folder, the grading helper and, when the bundle uses it, the
    bundle library (the recorded `grader_hash`)."""
    return hash_paths([bundle.grader_dir], bundle.grader_dir,
                      extra=[f"grading_lib {hash_tree(GRADING_LIB_DIR)}", *library_extra(bundle)])
