"""Bundle manifests: every violation is reported with its file and JSON path, never a traceback."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evaluator.bundles import load_bundle
from evaluator.errors import ValidationFailed
from evaluator.paths import BUNDLES_DIR


@pytest.fixture
def toy_copy(tmp_path: Path) -> Path:
    target = tmp_path / "toy"
    shutil.copytree(BUNDLES_DIR / "toy", target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def edit(bundle: Path, change) -> Path:
    manifest = bundle / "bundle.yaml"
    raw = yaml.safe_load(manifest.read_text())
    change(raw)
    manifest.write_text(yaml.safe_dump(raw, sort_keys=False))
    return manifest


def paths_of(exc: pytest.ExceptionInfo) -> dict[str, str]:
    return {v.json_path: v.message for v in exc.value.violations}


def test_the_shipped_toy_bundle_loads():
    bundle = load_bundle(BUNDLES_DIR / "toy")
    assert bundle.id == "toy"
    assert bundle.tool("train_and_evaluate") is not None
    assert bundle.controller is not None and bundle.controller.apply_tool == "train_and_evaluate"
    assert bundle.target.baseline is not None and bundle.target.target_score() > bundle.target.baseline


def test_wrong_type_names_file_and_path(toy_copy):
    manifest = edit(toy_copy, lambda raw: raw["limits"].update(max_steps="ten"))
    with pytest.raises(ValidationFailed) as exc:
        load_bundle(toy_copy)
    [violation] = exc.value.violations
    assert violation.file == str(manifest.resolve())
    assert violation.json_path == "$.limits.max_steps"
    assert "not of type 'integer'" in violation.message


def test_missing_file_names_the_field(toy_copy):
    edit(toy_copy, lambda raw: raw.update(task="nowhere.md"))
    with pytest.raises(ValidationFailed) as exc:
        load_bundle(toy_copy)
    assert paths_of(exc) == {"$.task": "file not found: nowhere.md"}


def test_unknown_fields_are_rejected_at_every_level(toy_copy):
    def change(raw):
        raw["colour"] = "blue"
        raw["tools"][0]["retries"] = 3
    edit(toy_copy, change)
    with pytest.raises(ValidationFailed) as exc:
        load_bundle(toy_copy)
    found = paths_of(exc)
    assert "colour" in found["$"] and found["$"].startswith("unknown field")
    assert "retries" in found["$.tools[0]"]


def test_all_violations_are_reported_at_once(toy_copy):
    def change(raw):
        raw["limits"]["memory_mb"] = "lots"
        raw["target"]["direction"] = "up"
        del raw["grader"]
    edit(toy_copy, change)
    with pytest.raises(ValidationFailed) as exc:
        load_bundle(toy_copy)
    found = paths_of(exc)
    assert {"$", "$.limits.memory_mb", "$.target.direction"} <= set(found)
    assert "'grader' is a required property" in found["$"]


def test_cross_references_and_embedded_schemas_are_checked(toy_copy):
    def change(raw):
        raw["controller"]["apply_tool"] = "no_such_tool"
        raw["tools"][0]["parameters"]["properties"]["config"]["type"] = "banana"
    edit(toy_copy, change)
    (toy_copy / "output.schema.json").write_text('{"type": 12}')
    with pytest.raises(ValidationFailed) as exc:
        load_bundle(toy_copy)
    found = paths_of(exc)
    assert found["$.controller.apply_tool"] == "no tool named 'no_such_tool'"
    assert any(p.startswith("$.tools[0].parameters") for p in found)
    assert any(v.file.endswith("output.schema.json") for v in exc.value.violations)


def test_path_escaping_the_bundle_is_refused(toy_copy):
    edit(toy_copy, lambda raw: raw["workspace"].update(starter="../../etc"))
    with pytest.raises(ValidationFailed) as exc:
        load_bundle(toy_copy)
    assert "$.workspace.starter" in paths_of(exc)


def test_broken_yaml_reports_the_line(toy_copy):
    manifest = toy_copy / "bundle.yaml"
    manifest.write_text(manifest.read_text() + "\nlimits: [unclosed\n")
    with pytest.raises(ValidationFailed) as exc:
        load_bundle(toy_copy)
    [violation] = exc.value.violations
    assert violation.file == str(manifest.resolve()) and "not valid YAML (line" in violation.message


def test_cli_validate_prints_violations_without_traceback(toy_copy):
    edit(toy_copy, lambda raw: raw["limits"].update(pids="many"))
    proc = subprocess.run([sys.executable, "-m", "evaluator", "validate", str(toy_copy)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"{toy_copy.resolve() / 'bundle.yaml'}: $.limits.pids:" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    ok = subprocess.run([sys.executable, "-m", "evaluator", "validate", str(BUNDLES_DIR / "toy")],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("ok  toy")
