"""Build the base image and bundle images with the Docker SDK, skipping any whose tag exists.

Every tag is `<repo>:<first 16 hex of the input hash>` and the full hash is a label, so a
tag that exists is a cache hit and a changed input is a new tag.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
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


# -- input hashes (no Docker needed): the single definition `ImageBuilder` builds by and
# -- `ctxeval build --changed-since` compares with ---------------------------------------------
def base_inputs(root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """The files the rootfs and base images are made of, in the project checkout at `root`."""
    return {"dockerfile": root / BASE_DOCKERFILE.relative_to(PROJECT_ROOT),
            "requirements": root / BASE_REQUIREMENTS.relative_to(PROJECT_ROOT),
            "offline_script": root / OFFLINE_SCRIPT.relative_to(PROJECT_ROOT)}


def rootfs_input_hash(codename: str, root: Path = PROJECT_ROOT) -> str:
    files = base_inputs(root)
    return context_hash(build_context({"build_offline.py": files["offline_script"],
                                       "requirements.txt": files["requirements"]}), codename)


def base_context(root: Path = PROJECT_ROOT) -> bytes:
    files = base_inputs(root)
    return build_context({"Dockerfile": files["dockerfile"],
                          "scripts/base_image/requirements.txt": files["requirements"]})


def base_input_hash(parent_hash: str, root: Path = PROJECT_ROOT) -> str:
    """`parent_hash`: the rootfs image's input hash (offline) or the official image's name (registry)."""
    return context_hash(base_context(root), parent_hash)


def base_tag(base_hash: str) -> str:
    return f"{BASE_REPO}:{base_hash[:TAG_HEX]}"


def bundle_context(bundle: Bundle) -> bytes:
    files = {"Dockerfile": bundle.dockerfile}
    for path in bundle.image_context:
        files[path.relative_to(bundle.root).as_posix()] = path
    return build_context(files)


def bundle_buildargs(bundle: Bundle, base_image_tag: str) -> dict[str, str]:
    return {**bundle.build_args, "BASE_IMAGE": base_image_tag}


def bundle_input_hash(bundle: Bundle, base_hash: str, context: bytes | None = None,
                      base_image_tag: str | None = None) -> str:
    """The bundle image's hash: its build context, the base image's hash and the build arguments."""
    buildargs = bundle_buildargs(bundle, base_image_tag or base_tag(base_hash))
    return context_hash(bundle_context(bundle) if context is None else context, base_hash,
                        json.dumps(buildargs, sort_keys=True))


def bundle_tag(bundle_id: str, bundle_hash: str) -> str:
    return f"{BUNDLE_REPO_PREFIX}{bundle_id}:{bundle_hash[:TAG_HEX]}"


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
        self._source: str | None = None
        self._codename: str | None = None

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
    def host_codename(self) -> str:
        if self._codename is None:
            self._codename = _host_codename()
        return self._codename

    def resolved_base_source(self) -> str:
        """"registry" or "offline": "auto" asks the registry once (a local python:3.11-slim counts)."""
        if self._source is None:
            source = self.base_source
            if source == "auto":
                source = "registry" if self._registry_answers() else "offline"
            if source not in ("registry", "offline"):
                raise CtxevalError(f"unknown base source {source!r} (auto, registry or offline)")
            self._source = source
        return self._source

    def parent_input_hash(self, root: Path = PROJECT_ROOT) -> str:
        """The hash the base image's parent contributes, for the checkout at `root` (builds nothing)."""
        if self.resolved_base_source() == "registry":
            return OFFICIAL_BASE_IMAGE
        return rootfs_input_hash(self.host_codename(), root)

    def base_input_hash(self, root: Path = PROJECT_ROOT) -> str:
        """The base image's input hash for the checkout at `root`, without building anything."""
        return base_input_hash(self.parent_input_hash(root), root)

    def rootfs_image(self) -> ImageRef:
        codename = self.host_codename()
        digest = rootfs_input_hash(codename)
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
        return base_context()

    def base_image(self) -> ImageRef:
        if self._base is not None:
            return self._base
        context = self._base_context()
        if self.resolved_base_source() == "registry":
            parent_tag, parent_hash = OFFICIAL_BASE_IMAGE, OFFICIAL_BASE_IMAGE
        else:
            parent = self.rootfs_image()
            parent_tag, parent_hash = parent.tag, parent.input_hash
        digest = context_hash(context, parent_hash)
        tag = base_tag(digest)
        built = False
        if not self.exists(tag):
            self._build(context, tag, {"BASE_IMAGE": parent_tag},
                        {LABEL_INPUT_HASH: digest, LABEL_KIND: "base", LABEL_BASE: parent_tag})
            built = True
        self._base = ImageRef(tag, digest, built)
        return self._base

    # -- bundles -------------------------------------------------------------------
    def bundle_context(self, bundle: Bundle) -> bytes:
        return bundle_context(bundle)

    def bundle_image(self, bundle: Bundle) -> ImageRef:
        base = self.base_image()
        context = self.bundle_context(bundle)
        buildargs = bundle_buildargs(bundle, base.tag)
        digest = bundle_input_hash(bundle, base.input_hash, context, base.tag)
        tag = bundle_tag(bundle.base_id, digest)  # a variant (toy@long) shares its base bundle's image
        if self.exists(tag):
            return ImageRef(tag, digest, built=False)
        self._build(context, tag, buildargs, {
            LABEL_INPUT_HASH: digest, LABEL_KIND: "bundle", LABEL_BUNDLE: bundle.base_id,
            LABEL_BUNDLE_VERSION: bundle.version, LABEL_BASE: base.tag})
        return ImageRef(tag, digest, built=True)


def image_labels(client, tag: str) -> dict[str, str]:
    return dict(client.images.get(tag).labels or {})


def bundle_image_hash_ok(client, tag: str, expected: str) -> bool:
    """True when the image's input-hash label matches `expected` (an image tampered with or retagged fails)."""
    return image_labels(client, tag).get(LABEL_INPUT_HASH) == expected


def describe(ref: ImageRef) -> str:
    return f"{ref.tag} ({'built' if ref.built else 'cached'})"

