"""Shared fixtures. Docker tests run against the real engine; under CI=true a missing engine fails."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

from evaluator.bundles import load_bundle
from evaluator.bundles.data import prepare_data
from evaluator.paths import BUNDLES_DIR
from evaluator.sandbox import SandboxLimits, SandboxSpec, create_sandbox, docker_engine_answers

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

SMALL_LIMITS = SandboxLimits(cpus=1.0, memory_mb=256, pids=64, tmpfs_mb=32, exec_timeout_seconds=20,
                             output_bytes=16 * 1024, wall_seconds=300, workspace_mb=64)


def pytest_collection_modifyitems(config, items):
    if docker_engine_answers():
        return
    if IN_CI:
        raise pytest.UsageError("CI=true but no Docker engine answers: the docker tests must run in CI")
    skip = pytest.mark.skip(reason="no Docker engine answers (outside CI this is a skip)")
    for item in items:
        if "docker" in item.keywords:
            item.add_marker(skip)


def edited_toy(folder: Path, edit: Callable[[dict[str, Any]], None]):
    """A copy of the toy bundle in `folder` whose manifest `edit` changed in place, loaded."""
    import shutil

    import yaml
    copy = folder / "toy"
    shutil.copytree(BUNDLES_DIR / "toy", copy)
    manifest = copy / "bundle.yaml"
    raw = yaml.safe_load(manifest.read_text())
    edit(raw)
    manifest.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_bundle(copy)


def unreachable(raw: dict[str, Any]) -> None:
    """A target nobody reaches, so episodes run to their step budget."""
    raw["target"]["success"]["min_relative_improvement"] = 0.5


@pytest.fixture(scope="session")
def toy_bundle():
    return load_bundle(BUNDLES_DIR / "toy")


@pytest.fixture(scope="session")
def toy_data(toy_bundle):
    return prepare_data(toy_bundle)


@pytest.fixture(scope="session")
def docker_client():
    import docker
    return docker.from_env(timeout=300)


@pytest.fixture(scope="session")
def toy_image(docker_client, toy_bundle):
    from evaluator.images import ImageBuilder
    return ImageBuilder(client=docker_client).bundle_image(toy_bundle)


@pytest.fixture
def docker_sandbox(docker_client, toy_image, toy_bundle, toy_data, request):
    """A started docker sandbox on the toy image with small limits; stopped after the test."""
    started = []

    def make(limits: SandboxLimits = SMALL_LIMITS, **spec_fields):
        fields = dict(image=toy_image.tag, limits=limits,
                      labels={"ctxeval.run": f"pytest-{request.node.name[:40]}"},
                      tools_dir=toy_bundle.tools_dir, data_dir=toy_data.public)
        fields.update(spec_fields)
        sandbox = create_sandbox("docker", SandboxSpec(**fields), client=docker_client)
        sandbox.start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()
