"""Content hashes of files and folders: the identity of images, bundles and workspaces."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable


def iter_files(root: Path) -> list[Path]:
    """Files under `root` (or root itself), sorted, skipping caches that do not change meaning."""
    if root.is_file():
        return [root]
    skip = {"__pycache__", ".pytest_cache", ".mypy_cache"}
    return sorted(p for p in root.rglob("*")
                  if (p.is_file() or p.is_symlink()) and not skip.intersection(p.relative_to(root).parts))


def hash_paths(paths: Iterable[Path], base: Path, extra: Iterable[str] = ()) -> str:
    """sha256 over names (relative to `base`), modes' executable bit and contents, plus `extra` strings."""
    digest = hashlib.sha256()
    for item in extra:
        digest.update(b"extra\0" + item.encode() + b"\0")
    for top in paths:
        for file in iter_files(top):
            rel = file.relative_to(base).as_posix()
            digest.update(b"file\0" + rel.encode() + b"\0")
            if file.is_symlink():
                digest.update(b"link\0" + str(file.readlink()).encode() + b"\0")
                continue
            digest.update(b"x" if file.stat().st_mode & 0o111 else b"-")
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def hash_tree(root: Path) -> str:
    return hash_paths([root], root)
