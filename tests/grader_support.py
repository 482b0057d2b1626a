"""Running a bundle's grader by hand, as the grading sandbox runs it: with $CTXEVAL_GRADING_LIB
naming ctxeval's grading helper (the graders import ctxeval_grading from there)."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from unittest import mock

from evaluator.bundles.grading_helper import GRADING_LIB_DIR, GRADING_LIB_ENV

GRADING_ENV = {GRADING_LIB_ENV: str(GRADING_LIB_DIR)}


def import_grader(name: str, path: Path) -> ModuleType:
    """Import a grader's grade.py under `name` (registered in sys.modules: dataclasses look it up)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    with mock.patch.dict(os.environ, GRADING_ENV):
        spec.loader.exec_module(module)
    return module
