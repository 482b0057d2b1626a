"""Finding bundles: by id (`toy`), by id and variant (`toy@long`), by folder or by manifest path.

The registry is a folder of bundle folders (bundles/ of the checkout unless another is given);
a bundle's id there is its folder's name, the folder holding a manifest (MANIFEST_NAME). Lookups
return what `load_bundle` takes: a folder or manifest path, `@variant` appended when one is named.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CtxevalError
from .loader import load_bundle
from .manifest import MANIFEST_NAME, VARIANT_SEPARATOR, Bundle
from .variants import split_variant

__all__ = ["MANIFEST_NAME", "BundleRegistry", "UnknownBundle", "bundle_registry", "has_manifest"]

MANIFEST_SUFFIXES = (".yaml", ".yml")


class UnknownBundle(CtxevalError):
    """No bundle of that id in the registry; the message lists the ids there are."""

    def __init__(self, name: str, root: Path, known: list[str]):
        self.name, self.root, self.known = name, root, known
        listing = f"known: {', '.join(known)}" if known else f"there is no bundle under {root}"
        super().__init__(f"unknown bundle {name!r} ({listing})")


def has_manifest(folder: Path) -> bool:
    """Whether `folder` is a bundle folder (holds a manifest)."""
    return (Path(folder) / MANIFEST_NAME).is_file()


def _split_id(ref: str) -> tuple[str, str | None]:
    """`toy@long` -> ("toy", "long"); `toy` -> ("toy", None). As split_variant, without asking the disk."""
    base, separator, variant = ref.rpartition(VARIANT_SEPARATOR)
    return (base, variant) if separator and base else (ref, None)


def _looks_like_path(ref: str) -> bool:
    return "/" in ref or ref.startswith(".") or ref.endswith(MANIFEST_SUFFIXES)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # name too long, NUL byte: not a path of anything
        return False


@dataclass(frozen=True)
class BundleRegistry:
    """The bundles under one folder."""

    root: Path

    def folders(self) -> list[Path]:
        """Every bundle folder, sorted by id."""
        return sorted(manifest.parent for manifest in self.root.glob(f"*/{MANIFEST_NAME}") if manifest.is_file())

    def ids(self) -> list[str]:
        return [folder.name for folder in self.folders()]

    def __contains__(self, bundle_id: object) -> bool:
        return isinstance(bundle_id, str) and bundle_id in self.ids()

    def path_of(self, ref: str) -> Path:
        """The path of bundle `ref` (an id, or `id@variant`) for load_bundle; never a path outside the
        registry. Raises UnknownBundle."""
        base, variant = _split_id(str(ref))
        known = self.ids()
        if base not in known:
            raise UnknownBundle(str(ref), self.root, known)
        folder = self.root / base
        return Path(f"{folder}{VARIANT_SEPARATOR}{variant}") if variant is not None else folder

    def resolve(self, ref: str | Path) -> Path:
        """What a user names a bundle by: an existing folder or manifest path (either may end in
        `@variant`) as given, else an id under the registry. A name that is neither raises
        UnknownBundle; a path that does not exist is returned as given (the loader says so)."""
        base, _ = split_variant(ref)
        if _exists(base) or _looks_like_path(str(base)):
            return Path(ref)
        return self.path_of(str(ref))

    def load(self, ref: str | Path) -> Bundle:
        """The bundle `ref` names (see resolve), loaded and checked. Raises ValidationFailed or UnknownBundle."""
        return load_bundle(self.resolve(ref))

    def load_id(self, ref: str) -> Bundle:
        """The bundle of id `ref` (or `id@variant`) in this registry, never a path elsewhere."""
        return load_bundle(self.path_of(ref))


def bundle_registry(root: Path | None = None) -> BundleRegistry:
    """The registry under `root`, by default the checkout's bundles/ (read at call time)."""
    from .. import paths
    return BundleRegistry(Path(root) if root is not None else paths.BUNDLES_DIR)
