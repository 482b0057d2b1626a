"""The scratch folders sandboxes mount besides the workspace, each named by the variable their
programs read it from: the grading sandbox's, and the bundle library any sandbox of a bundle that
uses it gets.

Kept apart from grading.py, grader_run.py and runner.py, which all mount them."""
from __future__ import annotations

from ..bundles.bundle_lib import BUNDLE_LIB_DIR, BUNDLE_LIB_ENV, BUNDLE_LIB_MOUNT
from ..bundles.grading_helper import GRADING_LIB_DIR, GRADING_LIB_ENV, GRADING_LIB_MOUNT
from ..bundles.manifest import Bundle
from ..sandbox import Scratch
from ..sandbox.defaults import OUTPUT_MOUNT

# where the grader writes grade.json (and the run stage's plan): the one writable place it has
GRADER_OUTPUT = Scratch(env="CTXEVAL_OUTPUT", mount=OUTPUT_MOUNT, writable=True, size_mb=64)
# the run stage's results, for the grader to read
RUN_RESULTS = Scratch(env="CTXEVAL_RUN_RESULTS", mount="/grading/results", writable=False, size_mb=256)
# the grading helper graders import (ctxeval_grading), root's and read-only, as grade.py is
GRADING_LIB = Scratch(env=GRADING_LIB_ENV, mount=GRADING_LIB_MOUNT, files=GRADING_LIB_DIR, writable=False, size_mb=4)
# ctxeval's bundle library (evaluator/bundle_lib), for bundles that set `bundle_lib: true`
BUNDLE_LIB = Scratch(env=BUNDLE_LIB_ENV, mount=BUNDLE_LIB_MOUNT, files=BUNDLE_LIB_DIR, writable=False, size_mb=8)


def bundle_scratch(bundle: Bundle) -> tuple[Scratch, ...]:
    """What every sandbox of `bundle` mounts whatever its role: the bundle library, when used."""
    return (BUNDLE_LIB,) if bundle.bundle_lib else ()
