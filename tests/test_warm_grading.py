"""Warm grading (issue 14, item 4), against the real engine.

- a grader that only reads files grades in one warm sandbox per bundle: the same grades as a fresh
  grading container on the same artefacts, a fresh grader process each time;
- between two grades nothing of the first is left: workspace files, the output folder, /tmp,
  /dev/shm, processes;
- a grader that runs the submission's code (experiment_profiler) never gets a warm sandbox.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from evaluator.bundles import load_bundle
from evaluator.bundles.data import prepare_data
from evaluator.episode.grading import grade_artefacts
from evaluator.paths import BUNDLES_DIR
from evaluator.sandbox.defaults import OUTPUT_MOUNT
from evaluator.sandbox.outcomes import ExecOutcome
from evaluator.sandbox.pool import SandboxPool

pytestmark = [pytest.mark.docker]


def _predictions(tmp_path: Path, name: str, public: Path, label) -> Path:
    """A workspace holding predictions.csv: `label(i)` for the i-th test row (None: no file)."""
    folder = tmp_path / name
    folder.mkdir()
    if label is None:
        (folder / "notes.txt").write_text("no predictions")
        return folder
    with open(public / "test.csv") as handle:
        ids = [row["id"] for row in csv.DictReader(handle)]
    lines = ["id,target"] + [f"{i},{label(n)}" for n, i in enumerate(ids)]
    (folder / "predictions.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_warm_grades_equal_fresh_grades_on_the_same_artefacts(tmp_path, toy_bundle, toy_image):
    prepared = prepare_data(toy_bundle)
    workspaces = [_predictions(tmp_path, "zeros", prepared.public, lambda n: 0),
                  _predictions(tmp_path, "alternating", prepared.public, lambda n: n % 2),
                  _predictions(tmp_path, "missing", prepared.public, None),
                  _predictions(tmp_path, "garbage", prepared.public, lambda n: "cat")]
    labels = {"ctxeval.run": "pytest-warm-grading"}
    fresh = [grade_artefacts(toy_bundle, "docker", toy_image.tag, w, prepared, labels) for w in workspaces]
    pool = SandboxPool(max_episodes=20)
    try:
        warm = [grade_artefacts(toy_bundle, "docker", toy_image.tag, w, prepared, labels, pool=pool) for w in workspaces]
    finally:
        pool.close()
    assert [g.grade for g in warm] == [g.grade for g in fresh]
    assert [g.errors for g in warm] == [g.errors for g in fresh]
    assert fresh[0].valid and fresh[1].valid and not fresh[2].valid, [g.grade for g in fresh]
    assert fresh[0].score != fresh[1].score  # the artefacts really differ: a stale workspace would show
    assert [g.log["warm"] for g in warm] == [False, True, True, True]
    assert pool.started == 1 and not any(g.log["warm"] for g in fresh)


def test_nothing_of_one_grade_is_left_for_the_next(tmp_path, toy_bundle, toy_image):
    prepared = prepare_data(toy_bundle)
    first = _predictions(tmp_path, "first", prepared.public, lambda n: 0)
    (first / "sub").mkdir()
    (first / "sub" / "only-in-first.txt").write_text("x")
    second = _predictions(tmp_path, "second", prepared.public, lambda n: 1)
    pool = SandboxPool(max_episodes=5)
    spy = []
    try:
        from evaluator.episode import grading
        grade = grading.grade_artefacts
        original = grading.read_output_file

        def dirty_then_read(sandbox, name, dest):
            if not spy:  # during the first grade: leave everything a grader process could leave
                result = sandbox.exec('echo t > /tmp/left; echo s > /dev/shm/left; echo o > "$CTXEVAL_OUTPUT/left"; '
                                      'setsid sleep 1000 >/dev/null 2>&1 </dev/null & sleep 0.2; echo ok')
                assert result.outcome == ExecOutcome.OK, result
            else:  # during the second: look
                look = sandbox.exec('find /workspace /tmp /dev/shm "$CTXEVAL_OUTPUT" -mindepth 1 | sort; '
                                    'ps -eo args= | grep -c "^sleep 1000" || true')
                spy.append(look.stdout)
            spy.append(sandbox)
            return original(sandbox, name, dest)

        grading.read_output_file = dirty_then_read
        try:
            grade(toy_bundle, "docker", toy_image.tag, first, prepared, {"ctxeval.run": "pytest-warm-left"}, pool=pool)
            grade(toy_bundle, "docker", toy_image.tag, second, prepared, {"ctxeval.run": "pytest-warm-left"}, pool=pool)
        finally:
            grading.read_output_file = original
    finally:
        pool.close()
    assert spy[0] is spy[2], "the second grade should have had the same warm sandbox"
    listing = spy[1].split()
    # the second grade's own output (grade.json) is written before the look; nothing else is there
    assert listing == [f"{OUTPUT_MOUNT}/grade.json", "/workspace/predictions.csv", "0"], listing


def test_a_grader_that_runs_the_submission_never_grades_warm(tmp_path, docker_client):
    from evaluator.images import ImageBuilder
    bundle = load_bundle(BUNDLES_DIR / "experiment_profiler")
    image = ImageBuilder(client=docker_client).bundle_image(bundle)
    prepared = prepare_data(bundle)
    pool = SandboxPool(max_episodes=5)
    try:
        outcome = grade_artefacts(bundle, "docker", image.tag, bundle.starter_dir, prepared,
                                  {"ctxeval.run": "pytest-warm-profiler"}, pool=pool)
    finally:
        pool.close()
    assert bundle.grader_executes_submission
    assert outcome.log["warm"] is False and pool.started == 0
