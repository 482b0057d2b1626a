"""Finding bundles by id, id@variant, folder or manifest path; listing them; unknown ids named with
the known ones; and the manifest's file name written in one place only."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.bundles import MANIFEST_NAME, BundleRegistry, UnknownBundle, bundle_registry
from evaluator.errors import CtxevalError, ValidationFailed
from evaluator.paths import BUNDLES_DIR, PROJECT_ROOT

IDS = ["breast_cancer", "diabetes", "digits", "experiment_profiler", "nomad", "toy"]


@pytest.fixture
def registry() -> BundleRegistry:
    return bundle_registry()


@pytest.fixture
def own_root(tmp_path) -> Path:
    """A registry of two bundles (a copy of toy as `b_toy` and as `a_toy`) and a folder without a manifest."""
    root = tmp_path / "bundles"
    for name in ("b_toy", "a_toy"):
        shutil.copytree(BUNDLES_DIR / "toy", root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "not_a_bundle").mkdir()
    (root / "stray.yaml").write_text("id: stray\n")
    return root


def test_the_checkout_bundles_are_listed_sorted(registry):
    assert registry.root == BUNDLES_DIR
    assert registry.ids() == IDS
    assert registry.folders() == [BUNDLES_DIR / name for name in IDS]
    assert "toy" in registry and "nope" not in registry


def test_an_id_and_an_id_with_a_variant_resolve_under_the_registry(registry):
    assert registry.resolve("toy") == BUNDLES_DIR / "toy"
    assert registry.resolve("toy@long") == Path(f"{BUNDLES_DIR / 'toy'}@long")
    assert registry.load("toy").id == "toy"
    long = registry.load("toy@long")
    assert long.id == "toy@long" and long.variant == "long" and long.root == BUNDLES_DIR / "toy"
    assert registry.load_id("toy@long").id == "toy@long"


def test_a_folder_or_a_manifest_path_is_taken_as_given(registry, own_root):
    folder, manifest = own_root / "a_toy", own_root / "a_toy" / MANIFEST_NAME
    assert registry.resolve(folder) == folder and registry.resolve(manifest) == manifest
    assert registry.resolve(f"{folder}@long") == Path(f"{folder}@long")
    assert registry.load(manifest).root == folder
    assert registry.load(f"{folder}@long").id == "toy@long"


def test_an_unknown_id_lists_the_known_ones(registry):
    with pytest.raises(UnknownBundle) as caught:
        registry.resolve("nope@long")
    assert isinstance(caught.value, CtxevalError)
    assert str(caught.value) == "unknown bundle 'nope@long' (known: breast_cancer, diabetes, digits, experiment_profiler, nomad, toy)"
    with pytest.raises(UnknownBundle, match="unknown bundle 'toyy'"):
        registry.load("toyy")


def test_a_path_that_does_not_exist_is_left_to_the_loader(registry, tmp_path):
    missing = tmp_path / "nowhere"
    assert registry.resolve(missing) == missing
    with pytest.raises(ValidationFailed, match="bundle manifest not found"):
        registry.load(missing)
    assert registry.resolve("nowhere/bundle.yaml") == Path("nowhere/bundle.yaml")


@pytest.mark.parametrize("ref", ["../bundles/toy", "/etc", "toy/../nomad", "", "@long"])
def test_an_id_lookup_never_leaves_the_registry(registry, ref):
    with pytest.raises(UnknownBundle):
        registry.path_of(ref)


def test_a_registry_of_its_own(own_root):
    registry = bundle_registry(own_root)
    assert registry.ids() == ["a_toy", "b_toy"]  # sorted; no manifest, no bundle
    assert registry.resolve("b_toy@long") == Path(f"{own_root / 'b_toy'}@long")
    assert registry.load_id("a_toy").root == own_root / "a_toy"
    with pytest.raises(UnknownBundle, match=r"\(known: a_toy, b_toy\)"):
        registry.path_of("toy")


def test_an_empty_or_missing_root_says_so(tmp_path):
    for root in (tmp_path, tmp_path / "absent"):
        registry = BundleRegistry(root)
        assert registry.ids() == []
        with pytest.raises(UnknownBundle, match=f"there is no bundle under {re.escape(str(root))}"):
            registry.path_of("toy")


def test_the_default_root_is_read_when_asked(monkeypatch, own_root):
    import evaluator.paths
    monkeypatch.setattr(evaluator.paths, "BUNDLES_DIR", own_root)
    assert bundle_registry().ids() == ["a_toy", "b_toy"]


def test_the_manifest_name_is_written_in_one_place():
    """Every lookup goes through the registry (or MANIFEST_NAME): no module spells the file name."""
    literal = re.compile(r"""["'][^"'\n]*bundle\.yaml["']""")
    spelled = [f"{path.relative_to(PROJECT_ROOT)}: {line.strip()}"
               for path in sorted((PROJECT_ROOT / "evaluator").rglob("*.py"))
               for line in path.read_text().splitlines()
               if literal.search(line) and "help=" not in line]
    assert spelled == ['evaluator/bundles/manifest.py: MANIFEST_NAME = "bundle.yaml"  # a bundle is a folder '
                       'holding this file'], spelled


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ref=st.text(max_size=30) | st.sampled_from(["a\x00b", "x" * 5000, "toy@", "@", "toy@@long", "~nosuchuser"]))
def test_any_name_resolves_or_is_a_clear_error(registry, ref):
    try:
        bundle = registry.load(ref)
    except CtxevalError as exc:  # UnknownBundle or ValidationFailed: a message, never a traceback
        assert str(exc)
    else:
        assert bundle.base_id in IDS
