"""ctxeval's grading helper (ctxeval_grading), as a grader uses it: stdlib only, the safe submission
read, grade.json written atomically, main()'s exit codes; its mount in the grading sandbox, and the
grader identity that covers it."""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from grader_support import GRADING_ENV

from evaluator.bundles import load_bundle
from evaluator.bundles import grading_helper
from evaluator.bundles.grading_helper import GRADING_LIB_DIR, GRADING_LIB_ENV, grader_hash
from evaluator.episode.mounts import GRADING_LIB
from evaluator.hashing import hash_tree
from evaluator.paths import BUNDLES_DIR

sys.path.insert(0, str(GRADING_LIB_DIR))
import ctxeval_grading as grading  # noqa: E402

GRADER = '''
import os, sys
sys.path.insert(0, os.environ["CTXEVAL_GRADING_LIB"])
import ctxeval_grading as grading

def metric():
    mode = os.environ["MODE"]
    if mode == "invalid":
        raise grading.InvalidSubmission("answer.txt is empty", {"rows": 0})
    if mode == "bug":
        raise KeyError("the answers")
    text = grading.read_submission(grading.env_path("CTXEVAL_WORKSPACE") / "answer.txt", 100)
    return grading.make_grade("exact", True, float(text.strip() == "42"), details={"chars": len(text)})

grading.main(metric, "exact")
'''


def run_grader(tmp_path: Path, mode: str, **env: str) -> subprocess.CompletedProcess:
    script = tmp_path / "grade.py"
    script.write_text(GRADER)
    full = {"PATH": os.environ["PATH"], **GRADING_ENV, "MODE": mode, **env}
    return subprocess.run([sys.executable, str(script)], env=full, capture_output=True, text=True, timeout=60)


@pytest.fixture
def folders(tmp_path) -> dict[str, str]:
    (tmp_path / "ws").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "ws" / "answer.txt").write_text("42\n")
    return {"CTXEVAL_WORKSPACE": str(tmp_path / "ws"), "CTXEVAL_OUTPUT": str(tmp_path / "out")}


def test_the_helper_imports_only_the_standard_library():
    tree = ast.parse((GRADING_LIB_DIR / "ctxeval_grading.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported and imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
    assert sorted(p.name for p in GRADING_LIB_DIR.iterdir() if p.name != "__pycache__") == ["ctxeval_grading.py"]


def test_a_grade_is_written_atomically_and_the_grader_exits_0(tmp_path, folders):
    proc = run_grader(tmp_path, "score", **folders)
    assert proc.returncode == 0, proc.stderr
    grade = json.loads((tmp_path / "out" / "grade.json").read_text())
    assert grade == {"schema_version": 1, "valid": True, "score": 1.0, "metric": "exact", "reason": None,
                     "details": {"chars": 3}}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["grade.json"]  # no temporary left


def test_an_invalid_submission_is_a_grade_with_its_reason(tmp_path, folders):
    proc = run_grader(tmp_path, "invalid", **folders)
    assert proc.returncode == 0, proc.stderr
    grade = json.loads((tmp_path / "out" / "grade.json").read_text())
    assert grade == {"schema_version": 1, "valid": False, "score": None, "metric": "exact",
                     "reason": "answer.txt is empty", "details": {"rows": 0}}


def test_a_grader_bug_or_a_missing_folder_exits_1_with_the_error(tmp_path, folders):
    bug = run_grader(tmp_path, "bug", **folders)
    assert bug.returncode == 1 and "grade.py: error: KeyError: 'the answers'" in bug.stderr
    no_output = run_grader(tmp_path, "score", CTXEVAL_WORKSPACE=folders["CTXEVAL_WORKSPACE"])
    assert no_output.returncode == 1
    assert "grade.py: error: GraderError: environment variable CTXEVAL_OUTPUT is not set" in no_output.stderr
    assert not (tmp_path / "out" / "grade.json").exists()


def test_a_submission_too_large_or_not_utf8_is_invalid(tmp_path, folders):
    (tmp_path / "ws" / "answer.txt").write_text("4" * 101)
    proc = run_grader(tmp_path, "score", **folders)
    grade = json.loads((tmp_path / "out" / "grade.json").read_text())
    assert proc.returncode == 0 and grade["reason"] == "answer.txt is larger than 100 bytes"
    path = tmp_path / "ws" / "answer.txt"
    path.write_bytes(b"\xff\xfe4")
    with pytest.raises(grading.InvalidSubmission, match="answer.txt is not UTF-8 text"):
        grading.read_submission(path, 100)
    path.write_bytes("\ufeff42".encode())
    assert grading.read_submission(path, 100) == "42"  # a BOM is dropped


def test_a_missing_a_linked_or_a_special_submission_is_invalid(tmp_path):
    with pytest.raises(grading.InvalidSubmission, match="^answer.txt not found in the workspace$"):
        grading.read_submission(tmp_path / "answer.txt", 100)
    os.symlink("/etc/hostname", tmp_path / "answer.txt")
    with pytest.raises(grading.InvalidSubmission, match="is a symbolic link; it must be a regular file"):
        grading.read_submission(tmp_path / "answer.txt", 100)
    (tmp_path / "dir.txt").mkdir()
    with pytest.raises(grading.InvalidSubmission, match="^dir.txt is not a regular file$"):
        grading.read_submission(tmp_path / "dir.txt", 100)


def test_the_grading_sandbox_gets_the_helper_read_only():
    assert GRADING_LIB.env == GRADING_LIB_ENV == "CTXEVAL_GRADING_LIB"
    assert GRADING_LIB.files == GRADING_LIB_DIR and GRADING_LIB.writable is False


def test_the_grader_identity_covers_the_helper(tmp_path, monkeypatch):
    bundle = load_bundle(BUNDLES_DIR / "toy")
    recorded = grader_hash(bundle)
    assert recorded == grader_hash(bundle) and recorded != hash_tree(bundle.grader_dir)
    lib = tmp_path / "lib"
    shutil.copytree(GRADING_LIB_DIR, lib, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(grading_helper, "GRADING_LIB_DIR", lib)
    assert grader_hash(bundle) == recorded  # the same files: the same identity
    (lib / "ctxeval_grading.py").write_text((lib / "ctxeval_grading.py").read_text() + "\n# changed\n")
    assert grader_hash(bundle) != recorded
    grader = tmp_path / "grader"
    shutil.copytree(bundle.grader_dir, grader, ignore=shutil.ignore_patterns("__pycache__"))
    other = replace(bundle, grader_dir=grader)
    assert grader_hash(other) == grader_hash(bundle)
    (grader / "grade.py").write_text((grader / "grade.py").read_text() + "\n")
    assert grader_hash(other) != grader_hash(bundle)
