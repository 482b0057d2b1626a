#!/usr/bin/env python3
"""Grader of the breast_cancer bundle: balanced_accuracy of $CTXEVAL_WORKSPACE/predictions.csv against the hidden
test labels, rows matched by id (ctxeval_tabular.grading, from $CTXEVAL_BUNDLE_LIB)."""
import os
import sys

sys.path[:0] = [os.environ["CTXEVAL_GRADING_LIB"], os.environ["CTXEVAL_BUNDLE_LIB"]]
from ctxeval_tabular.grading import main  # noqa: E402

main("balanced_accuracy")
