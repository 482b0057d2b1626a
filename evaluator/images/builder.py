"""Build the base image and bundle images with the Docker SDK, skipping any whose tag exists.

Every tag is `<repo>:<first 16 hex of the input hash>` and the full hash is a label, so a
tag that exists is a cache hit and a changed input is a new tag.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

from ..bundles.manifest import Bundle
from ..errors import CtxevalError
from ..paths import PROJECT_ROOT
from .context import build_context, context_hash

OFFICIAL_BASE_IMAGE = "python:3.11-slim"
ROOTFS_REPO = "ctxeval/rootfs"
BASE_REPO = "ctxeval/base"
BUNDLE_REPO_PREFIX = "ctxeval/bundle-"
LABEL_INPUT_HASH = "ctxeval.input-hash"
LABEL_KIND = "ctxeval.image-kind"
LABEL_BUNDLE = "ctxeval.bundle"
LABEL_BUNDLE_VERSION = "ctxeval.bundle-version"
LABEL_BASE = "ctxeval.base-image"
TAG_HEX = 16

BASE_DOCKERFILE = PROJECT_ROOT / "Dockerfile"
BASE_REQUIREMENTS = PROJECT_ROOT / "scripts" / "base_image" / "requirements.txt"
OFFLINE_SCRIPT = PROJECT_ROOT / "scripts" / "base_image" / "build_offline.py"

Log = Callable[[str], None]


@dataclass(frozen=True)
class ImageRef:
    tag: str
    input_hash: str
    built: bool  # False when the tag already existed (cache hit)


def _host_codename() -> str:
    """The Debian suite the offline rootfs is made of, as the offline script itself reads it."""
    proc = subprocess.run([sys.executable, str(OFFLINE_SCRIPT), "--print-suite"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise CtxevalError(f"cannot tell the host's Debian suite: {proc.stderr.strip()}")
    return proc.stdout.strip()


class ImageBuilder:
    """`base_source`: "auto" (registry if it answers, else offline), "registry" or "offline"."""

    def __init__(self, client=None, base_source: str = "auto", log: Log | None = None):
        if client is None:
            import docker
            client = docker.from_env(timeout=900)
        self.client = client
        self.base_source = base_source
        self.log = log or (lambda message: None)
        self._base: ImageRef | None = None

    # -- helpers ---------------------------------------------------------------
    def exists(self, tag: str) -> bool:
        import docker.errors
        try:
            self.client.images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            return False

    def _registry_answers(self) -> bool:
        import docker.errors
        if self.exists(OFFICIAL_BASE_IMAGE):
            return True
        try:
            self.log(f"pulling {OFFICIAL_BASE_IMAGE}")
            self.client.images.pull(OFFICIAL_BASE_IMAGE)
            return True
        except docker.errors.APIError as exc:
            self.log(f"no registry ({str(exc).splitlines()[0][:160]}); building the base offline")
            return False

    def _build(self, context: bytes, tag: str, buildargs: dict[str, str], labels: dict[str, str]) -> None:
        self.log(f"building {tag}")
        stream = self.client.api.build(fileobj=context, custom_context=True, tag=tag, rm=True,
                                       forcerm=True, buildargs=buildargs, labels=labels, decode=True)
        tail: list[str] = []
        for chunk in stream:
            if "error" in chunk:
                raise CtxevalError(f"building {tag} failed: {chunk['error'].strip()}\n" + "".join(tail[-20:]))
            line = chunk.get("stream", "")
            if line:
                tail.append(line)
                if line.startswith("Step "):
                    self.log(line.strip())
        if not self.exists(tag):
            raise CtxevalError(f"building {tag} ended without an image:\n" + "".join(tail[-20:]))

    # -- base --------------------------------------------------------------------
    def rootfs_image(self) -> ImageRef:
        codename = _host_codename()
        digest = context_hash(build_context({"build_offline.py": OFFLINE_SCRIPT,
                                             "requirements.txt": BASE_REQUIREMENTS}), codename)
        tag = f"{ROOTFS_REPO}:{digest[:TAG_HEX]}"
        if self.exists(tag):
            return ImageRef(tag, digest, built=False)
        self.log(f"making the offline rootfs {tag} (Debian {codename} from the host's apt mirror)")
        cmd = [sys.executable, str(OFFLINE_SCRIPT), "--tag", tag,
               "--label", f"{LABEL_INPUT_HASH}={digest}", "--label", f"{LABEL_KIND}=rootfs"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not self.exists(tag):
            raise CtxevalError(f"offline rootfs build failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
        return ImageRef(tag, digest, built=True)

    def _base_context(self) -> bytes:
        return build_context({"Dockerfile": BASE_DOCKERFILE,
                              "scripts/base_image/requirements.txt": BASE_REQUIREMENTS})

    def base_image(self) -> ImageRef:
        if self._base is not None:
            return self._base
        context = self._base_context()
        source = self.base_source
        if source == "auto":
            source = "registry" if self._registry_answers() else "offline"
        if source == "registry":
            parent_tag, parent_hash = OFFICIAL_BASE_IMAGE, OFFICIAL_BASE_IMAGE
        elif source == "offline":
            parent = self.rootfs_image()
            parent_tag, parent_hash = parent.tag, parent.input_hash
        else:
            raise CtxevalError(f"unknown base source {source!r} (auto, registry or offline)")
        digest = context_hash(context, parent_hash)
        tag = f"{BASE_REPO}:{digest[:TAG_HEX]}"
        built = False
        if not self.exists(tag):
            self._build(context, tag, {"BASE_IMAGE": parent_tag},
                        {LABEL_INPUT_HASH: digest, LABEL_KIND: "base", LABEL_BASE: parent_tag})
            built = True
        self._base = ImageRef(tag, digest, built)
        return self._base

    # -- bundles -------------------------------------------------------------------
    def bundle_context(self, bundle: Bundle) -> bytes:
        files = {"Dockerfile": bundle.dockerfile}
        for path in bundle.image_context:
            files[path.relative_to(bundle.root).as_posix()] = path
        return build_context(files)

    def bundle_image(self, bundle: Bundle) -> ImageRef:
        base = self.base_image()
        context = self.bundle_context(bundle)
        buildargs = {**bundle.build_args, "BASE_IMAGE": base.tag}
        digest = context_hash(context, base.input_hash, json.dumps(buildargs, sort_keys=True))
        tag = f"{BUNDLE_REPO_PREFIX}{bundle.id}:{digest[:TAG_HEX]}"
        if self.exists(tag):
            return ImageRef(tag, digest, built=False)
        self._build(context, tag, buildargs, {
            LABEL_INPUT_HASH: digest, LABEL_KIND: "bundle", LABEL_BUNDLE: bundle.id,
            LABEL_BUNDLE_VERSION: bundle.version, LABEL_BASE: base.tag})
        return ImageRef(tag, digest, built=True)


def image_labels(client, tag: str) -> dict[str, str]:
    return dict(client.images.get(tag).labels or {})


def bundle_image_hash_ok(client, tag: str, expected: str) -> bool:
    """True when the image's input-hash label matches `expected` (an image tampered with or retagged fails)."""
    return image_labels(client, tag).get(LABEL_INPUT_HASH) == expected


def describe(ref: ImageRef) -> str:
    return f"{ref.tag} ({'built' if ref.built else 'cached'})"

