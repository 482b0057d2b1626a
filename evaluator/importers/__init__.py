"""Importers: ctxeval bundles written from other benchmarks' task folders (`ctxeval import ...`).

mlebench: one competition of a user's MLE-bench checkout (evaluator/importers/mlebench.py). The
files ctxeval writes into such a bundle are in mlebench_files/ (copied, never imported here).
"""
