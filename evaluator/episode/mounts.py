"""The scratch folders grading sandboxes mount, each named by the variable graders read it from.

Kept apart from grading.py and grader_run.py, which both mount them."""
from __future__ import annotations

from ..bundles.grading_helper import GRADING_LIB_DIR, GRADING_LIB_ENV, GRADING_LIB_MOUNT
from ..sandbox import Scratch
from ..sandbox.defaults import OUTPUT_MOUNT

# where the grader writes grade.json (and the run stage's plan): the one writable place it has
GRADER_OUTPUT = Scratch(env="CTXEVAL_OUTPUT", mount=OUTPUT_MOUNT, writable=True, size_mb=64)
# the run stage's results, for the grader to read
RUN_RESULTS = Scratch(env="CTXEVAL_RUN_RESULTS", mount="/grading/results", writable=False, size_mb=256)
# the grading helper graders import (ctxeval_grading), root's and read-only, as grade.py is
GRADING_LIB = Scratch(env=GRADING_LIB_ENV, mount=GRADING_LIB_MOUNT, files=GRADING_LIB_DIR, writable=False, size_mb=4)
