"""Bundle variants (`bundles/toy@long`) and probes in manifests: merging, ids, errors with file and
JSON path, the data and image keys a variant shares (or not) with its base, the CLI listing."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evaluator.bundles import load_bundle
from evaluator.bundles.data import data_dir
from evaluator.bundles.variants import split_variant
from evaluator.cli import app
from evaluator.cli.common import bundle_path as _bundle_path
from evaluator.errors import ValidationFailed
from evaluator.images.builder import bundle_input_hash
from evaluator.paths import BUNDLES_DIR

PROBE = {"id": "p", "fact": "The owner is Ada.", "plant": {"after_call": 2}, "ask": {"before_calls": [3, 5]},
         "question": "Who is the owner?", "answer": {"text": "Ada"}}


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
    return manifest.resolve()


def failure(path) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as exc:
        load_bundle(path)
    return {v.json_path: f"{v.file}: {v.message}" for v in exc.value.violations}


# -- loading and merging -----------------------------------------------------------------------

def test_the_long_variant_loads_with_its_own_id_and_the_base_id():
    base, long = load_bundle(BUNDLES_DIR / "toy"), load_bundle(f"{BUNDLES_DIR / 'toy'}@long")
    assert (base.id, base.base_id, base.variant, base.variants) == ("toy", "toy", None, ("long",))
    assert (long.id, long.base_id, long.variant, long.variants) == ("toy@long", "toy", "long", ("long",))
    assert long.root == base.root and long.manifest_path == base.manifest_path
    assert long.task_path.name == "task_long.md" and base.task_path.name == "task.md"
    assert long.reference_dir.name == "reference_long" and long.starter_dir == base.starter_dir
    assert "--long" in long.data.prepare and "--long" not in base.data.prepare
    assert "TOY_OBSERVATION=full" in long.tool("train_and_evaluate").command
    assert "TOY_OBSERVATION" not in base.tool("train_and_evaluate").command
    assert "drop_features" in long.controller.proposal_schema["properties"]["config"]["properties"]
    assert "drop_features" not in base.controller.proposal_schema["properties"]["config"]["properties"]
    assert "variants" not in long.raw and "variants" in base.raw


def test_limits_and_target_are_merged_one_level_deep():
    base, long = load_bundle(BUNDLES_DIR / "toy"), load_bundle(BUNDLES_DIR / "toy@long")
    assert long.limits.max_steps >= 41 and long.limits.max_steps != base.limits.max_steps
    assert long.limits.memory_mb == base.limits.memory_mb and long.limits.pids == base.limits.pids
    assert long.target.metric == base.target.metric == "accuracy"
    assert long.target.direction == "maximize"
    assert long.target.success.rule == "threshold" and long.target.success.min_relative_improvement is None
    assert long.target.open_ended is True and base.target.open_ended is False
    assert long.target.target_score() == long.target.success.threshold


def test_probes_are_parsed_into_probe_specs():
    long = load_bundle(BUNDLES_DIR / "toy@long")
    assert load_bundle(BUNDLES_DIR / "toy").probes == []
    by_id = {p.id: p for p in long.probes}
    assert len(by_id) == len(long.probes) == 5
    leak = by_id["leak_column"]
    assert leak.decisive and leak.answer_text == "f23" and leak.answer_number is None
    assert leak.plant_after_call == 2 and leak.constraint == {"drop_features": ["f23"]}
    assert leak.ask_before_calls == tuple(sorted(leak.ask_before_calls)) and max(leak.ask_before_calls) >= 30
    numbers = [p for p in long.probes if p.answer_number is not None]
    assert numbers and all(p.answer_text is None and p.tolerance > 0 for p in numbers)
    assert [p.id for p in long.probes if p.decisive] == ["leak_column"]
    assert len({p.plant_after_call for p in long.probes}) == 5  # planted at different calls
    for probe in long.probes:
        assert all(call > probe.plant_after_call for call in probe.ask_before_calls)
        assert max(probe.ask_before_calls) <= long.limits.max_steps


def test_the_manifest_file_and_the_id_forms_name_the_variant_too():
    assert load_bundle(BUNDLES_DIR / "toy" / "bundle.yaml@long").id == "toy@long"
    assert _bundle_path(Path("toy@long")) == Path(f"{BUNDLES_DIR / 'toy'}@long")
    assert load_bundle(_bundle_path(Path("toy@long"))).id == "toy@long"


def test_split_variant_never_splits_an_existing_path(tmp_path):
    assert split_variant("bundles/toy@long") == (Path("bundles/toy"), "long")
    assert split_variant("bundles/toy") == (Path("bundles/toy"), None)
    odd = tmp_path / "odd@name"
    odd.mkdir()
    assert split_variant(odd) == (odd, None)
    assert split_variant("@long") == (Path("@long"), None)


def test_a_variant_without_data_override_shares_the_base_data_and_image(toy_copy):
    edit(toy_copy, lambda raw: raw["variants"].update(quick={"limits": {"max_steps": 3}}))
    base, quick, long = (load_bundle(toy_copy), load_bundle(f"{toy_copy}@quick"), load_bundle(f"{toy_copy}@long"))
    assert data_dir(quick) == data_dir(base)
    assert data_dir(long) != data_dir(base) and data_dir(long).parent == data_dir(base).parent
    assert data_dir(long).parent.name == "toy"  # keyed by the base id: no @ in a mounted path
    assert bundle_input_hash(long, "b" * 64) == bundle_input_hash(base, "b" * 64)


# -- errors name the file and the JSON path -------------------------------------------------------

def test_an_unknown_variant_lists_the_known_ones(toy_copy):
    found = failure(f"{toy_copy}@lon")
    assert list(found) == ["$.variants"]
    assert str((toy_copy / "bundle.yaml").resolve()) in found["$.variants"]
    assert "unknown variant 'lon'" in found["$.variants"] and "known: long" in found["$.variants"]
    assert "declares no variants" in failure(BUNDLES_DIR / "experiment_profiler@long")["$.variants"]


def test_a_malformed_variant_is_reported_at_its_path(toy_copy):
    def change(raw):
        raw["variants"]["long"]["image"] = {"dockerfile": "Dockerfile"}  # not overridable
        raw["variants"]["long"]["limits"]["max_steps"] = "many"
        raw["variants"]["Bad-Name"] = {}
    manifest = edit(toy_copy, change)
    found = failure(toy_copy)
    assert "'image'" in found["$.variants.long"] and found["$.variants.long"].startswith(str(manifest))
    assert "not of type 'integer'" in found["$.variants.long.limits.max_steps"]
    assert "Bad-Name" in found["$.variants"]


def test_a_malformed_probe_is_reported_at_its_path(toy_copy):
    def change(raw):
        probes = raw["variants"]["long"]["probes"]
        probes[0]["plant"]["after_call"] = 0
        probes[1]["answer"] = {"text": "x", "number": 1}
        probes[2]["surprise"] = True
        del probes[3]["question"]
    edit(toy_copy, change)
    found = failure(f"{toy_copy}@long")
    assert "less than the minimum of 1" in found["$.variants.long.probes[0].plant.after_call"]
    assert "$.variants.long.probes[1].answer" in found
    assert "surprise" in found["$.variants.long.probes[2]"]
    assert "'question' is a required property" in found["$.variants.long.probes[3]"]


def test_an_ask_not_after_the_plant_call_and_duplicate_ids_are_rejected(toy_copy):
    def change(raw):
        probes = raw["variants"]["long"]["probes"]
        probes[0]["ask"]["before_calls"] = [2, 6]  # planted after call 2: call 2 is too early
        probes[2]["id"] = probes[1]["id"]
    edit(toy_copy, change)
    found = failure(f"{toy_copy}@long")
    assert set(found) == {"$.variants.long.probes[0].ask.before_calls[0]", "$.variants.long.probes[2].id"}
    assert "planted after call 2" in found["$.variants.long.probes[0].ask.before_calls[0]"]
    assert "duplicate probe id" in found["$.variants.long.probes[2].id"]


def test_base_probes_are_checked_at_their_own_path(toy_copy):
    edit(toy_copy, lambda raw: raw.update(probes=[{**PROBE, "ask": {"before_calls": [1]}}]))
    found = failure(toy_copy)
    assert list(found) == ["$.probes[0].ask.before_calls[0]"]
    edit(toy_copy, lambda raw: raw.update(probes=[PROBE]))
    [probe] = load_bundle(toy_copy).probes
    assert (probe.answer_text, probe.ask_before_calls, probe.decisive, probe.constraint) == ("Ada", (3, 5), False, None)


def test_violations_of_the_merged_manifest_point_at_where_the_value_was_written(toy_copy):
    def change(raw):
        raw["variants"]["long"]["task"] = "missing_long.md"
        raw["variants"]["long"]["target"] = {"success": {"rule": "relative_improvement",
                                                         "min_relative_improvement": 0.1}}
        raw["output"]["schema"] = "missing.schema.json"  # a base key the variant does not set
    edit(toy_copy, change)
    found = failure(f"{toy_copy}@long")
    assert found["$.variants.long.task"].endswith("file not found: missing_long.md")
    assert "$.output.schema" in found and "$.variants.long.output.schema" not in found


def test_a_merged_target_missing_a_key_is_blamed_on_the_variant(toy_copy):
    def change(raw):
        del raw["target"]["baseline"]
        raw["target"]["success"] = {"rule": "threshold", "threshold": 0.5}
        raw["variants"]["long"]["target"] = {"success": {"rule": "relative_improvement",
                                                         "min_relative_improvement": 0.1}}
    edit(toy_copy, change)
    assert load_bundle(toy_copy).target.success.rule == "threshold"
    found = failure(f"{toy_copy}@long")
    assert "'baseline' is a required property" in found["$.variants.long.target"]


# -- the command line --------------------------------------------------------------------------

def test_validate_lists_and_validates_the_variants():
    result = CliRunner().invoke(app, ["validate", str(BUNDLES_DIR / "toy")])
    assert result.exit_code == 0, result.output
    assert "ok  toy 1.0.0" in result.output and "variants: long" in result.output
    assert "ok  toy@long 1.0.0" in result.output
    only = CliRunner().invoke(app, ["validate", "toy@long"])
    assert only.exit_code == 0 and "ok  toy@long" in only.output and "variants:" not in only.output


def test_validate_reports_a_broken_variant_of_a_sound_base(toy_copy):
    edit(toy_copy, lambda raw: raw["variants"]["long"].update(task="nowhere.md"))
    result = CliRunner().invoke(app, ["validate", str(toy_copy)])
    assert result.exit_code == 1
    assert "ok  toy 1.0.0" in result.output
    assert "$.variants.long.task: file not found: nowhere.md" in result.output
    unknown = CliRunner().invoke(app, ["validate", f"{toy_copy}@nope"])
    assert unknown.exit_code == 1 and "$.variants: unknown variant 'nope' (known: long)" in unknown.output
