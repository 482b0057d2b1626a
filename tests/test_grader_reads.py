"""The graders read the submission through one descriptor opened without following links: a link
swapped in between a check and the open (the race an attacker won, issue 11) is refused, not read."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from grader_support import import_grader

from evaluator.paths import BUNDLES_DIR


def grader(bundle: str):
    return import_grader(f"grader_{bundle}", BUNDLES_DIR / bundle / "grader" / "grade.py")


CASES = {"toy": ("predictions.csv", "id,target\n1,0\n", lambda g, ws: g.read_predictions(ws)),
         "nomad": ("submission.csv", "id,formation_energy_ev_natom,bandgap_energy_ev\n1,0.1,2.0\n",
                   lambda g, ws: g.read_submission(ws / "submission.csv"))}


@pytest.mark.parametrize("bundle", sorted(CASES))
def test_a_link_swapped_in_after_the_check_is_never_followed(bundle, tmp_path, monkeypatch):
    module = grader(bundle)
    name, answers, read = CASES[bundle]
    private = tmp_path / "private" / "answers.csv"
    private.parent.mkdir()
    private.write_text(answers)  # what the link points at: the private answers' path
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    os.symlink(private, workspace / name)
    # the swap lands between the grader's link check and its open: the check sees a regular file
    monkeypatch.setattr(Path, "is_symlink", lambda self: False)
    with pytest.raises(module.InvalidSubmission, match="symbolic link"):
        read(module, workspace)


@pytest.mark.parametrize("bundle", sorted(CASES))
def test_a_fifo_submission_is_refused_at_once(bundle, tmp_path):
    module = grader(bundle)
    name, _, read = CASES[bundle]
    os.mkfifo(tmp_path / name)
    with pytest.raises(module.InvalidSubmission, match="not a regular file"):
        read(module, tmp_path)


@pytest.mark.parametrize("bundle", sorted(CASES))
def test_a_regular_submission_is_still_read(bundle, tmp_path):
    module = grader(bundle)
    name, answers, read = CASES[bundle]
    (tmp_path / name).write_text(answers)
    assert len(read(module, tmp_path)) == 1
