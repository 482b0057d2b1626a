"""Images are tagged by a hash of their inputs: same inputs hit the cache, changed inputs rebuild."""
from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from evaluator.bundles import load_bundle
from evaluator.images import ImageBuilder
from evaluator.images.builder import (LABEL_BUNDLE, LABEL_INPUT_HASH, LABEL_KIND, ROOTFS_REPO)
from evaluator.paths import BUNDLES_DIR

pytestmark = pytest.mark.docker


def test_existing_tags_are_cache_hits(docker_client, toy_bundle, toy_image):
    again = ImageBuilder(client=docker_client).bundle_image(toy_bundle)
    assert again.tag == toy_image.tag and again.built is False
    labels = docker_client.images.get(again.tag).labels
    assert labels[LABEL_INPUT_HASH] == again.input_hash and labels[LABEL_BUNDLE] == "toy"
    assert again.tag.endswith(":" + again.input_hash[:16])


def test_changed_input_gives_a_new_tag(tmp_path: Path, docker_client, toy_image):
    copy = tmp_path / "toy"
    shutil.copytree(BUNDLES_DIR / "toy", copy)
    dockerfile = copy / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nLABEL org.example.touched=yes\n")
    builder = ImageBuilder(client=docker_client)
    changed = builder.bundle_image(load_bundle(copy))
    try:
        assert changed.tag != toy_image.tag and changed.built is True
        assert docker_client.images.get(changed.tag).labels["org.example.touched"] == "yes"
        assert builder.bundle_image(load_bundle(copy)).built is False
    finally:
        docker_client.images.remove(changed.tag, force=True)


def _file_in_image(client, image: str, path: str) -> bytes:
    """A file as the image holds it (a created, never started container shows image content)."""
    container = client.containers.create(image, command=["true"])
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.getmembers()[0]
            return tar.extractfile(member).read() if member.isfile() else b"<not a file>"
    finally:
        container.remove(force=True)


def test_base_image_is_offline_rootfs_with_blanked_host_details(docker_client, toy_image):
    base_tag = docker_client.images.get(toy_image.tag).labels["ctxeval.base-image"]
    base = docker_client.images.get(base_tag)
    assert base.labels[LABEL_KIND] == "base"
    parent = base.labels["ctxeval.base-image"]
    if not parent.startswith(ROOTFS_REPO):
        pytest.skip(f"this machine's base came from a registry ({parent})")
    assert _file_in_image(docker_client, parent, "/etc/resolv.conf") == b""
    assert _file_in_image(docker_client, parent, "/etc/hostname") == b""
    config = docker_client.images.get(parent).attrs["Config"]
    assert any(e.startswith("PATH=/opt/ctxeval/venv/bin") for e in config["Env"])
    assert base.attrs["Config"]["User"] == "agent"
