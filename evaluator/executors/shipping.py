"""What travels between the driver and a Ray node (no shared filesystem is assumed).

To the node: the bundle's folder and its prepared data, as tar archives, once per bundle (Ray's
object store keeps one copy per node); the node unpacks them once per content digest into its own
cache. Back from the node: the episode's folder (result.json, events.jsonl, the copied-out
workspace), which the driver installs into the run folder atomically: unpacked beside it under a
temporary name, then renamed into place, so a run folder never holds half an episode.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..bundles import load_bundle
from ..bundles.data import PreparedData
from ..bundles.manifest import VARIANT_SEPARATOR, Bundle

from ..errors import CtxevalError

SKIPPED_NAMES = ("__pycache__", ".pytest_cache")


def pack_folder(root: Path) -> bytes:
    """A tar archive of everything under `root` (names relative to it; caches left out)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if any(part in SKIPPED_NAMES for part in relative.parts):
                continue
            tar.add(path, arcname=str(relative), recursive=False)
    return buffer.getvalue()


def unpack(data: bytes, target: Path) -> None:
    """Unpack an archive of pack_folder into `target` (tarfile's "data" filter: no absolute
    names, no links out, no devices)."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(target, filter="data")


def install_folder(data: bytes, destination: Path) -> None:
    """Unpack an episode's folder as `destination`, all at once (an old folder there is replaced)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.incoming-", dir=destination.parent))
    try:
        unpack(data, staging)
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@dataclass(frozen=True)
class BundleShipment:
    """A bundle and its prepared data, ready to travel to a node."""

    bundle_id: str
    variant: str | None
    bundle_tar: bytes
    data_tar: bytes | None
    public: str | None  # the prepared public/private folders, relative to the data's root
    private: str | None

    @property
    def digest(self) -> str:
        content = hashlib.sha256(self.bundle_tar)
        content.update(self.data_tar or b"")
        content.update(f"{self.variant}|{self.public}|{self.private}".encode())
        return content.hexdigest()[:16]


def ship_bundle(bundle: Bundle, prepared: PreparedData) -> BundleShipment:
    root = prepared.root
    return BundleShipment(bundle.id, bundle.variant, pack_folder(bundle.root),
                          pack_folder(root) if root is not None else None,
                          _relative(prepared.public, root), _relative(prepared.private, root))


def _relative(path: Path | None, root: Path | None) -> str | None:
    return None if path is None or root is None else str(path.relative_to(root))


def land_bundle(shipment: BundleShipment, cache: Path) -> tuple[Bundle, PreparedData]:
    """The shipped bundle and data on this node, unpacked once per digest under `cache`."""
    home = cache / f"{shipment.bundle_id.replace(VARIANT_SEPARATOR, '-')}-{shipment.digest}"
    if not home.exists():
        staging = Path(tempfile.mkdtemp(prefix=".landing-", dir=_made(cache)))
        unpack(shipment.bundle_tar, staging / "bundle")
        if shipment.data_tar is not None:
            unpack(shipment.data_tar, staging / "data")
        try:
            os.replace(staging, home)
        except OSError:  # another task on this node landed it first
            shutil.rmtree(staging, ignore_errors=True)
    folder = home / "bundle"
    try:
        bundle = load_bundle(f"{folder}{VARIANT_SEPARATOR}{shipment.variant}" if shipment.variant else folder)
    except Exception as exc:
        raise CtxevalError(f"the shipped bundle {shipment.bundle_id} does not load on this node: {exc}") from exc
    data = home / "data" if shipment.data_tar is not None else None
    return bundle, PreparedData(data, data / shipment.public if data and shipment.public else None,
                                data / shipment.private if data and shipment.private else None)


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
