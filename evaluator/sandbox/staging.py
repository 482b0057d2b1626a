"""Host folders staged under a neutral path before they are bind-mounted into a sandbox.

A bind mount shows its source path in the container's /proc/self/mountinfo, so mounting
`/home/alice/project/bundles/toy/tools` would tell the agent who runs it and where. Each folder
is copied once (hard-linked where the filesystem allows, for large data) into
`<stage root>/<content hash>/`, and that path is what the engine mounts: it reveals nothing but a
hash. The stage root is `$CTXEVAL_MOUNT_ROOT`, else `<system temp>/ctxeval-mounts-<uid>`, created
mode 0711 (others may traverse to a hash they already know, never list). Entries are immutable
and shared by every run on the host; `ctxeval clean --mounts` removes them.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path

from .. import settings
from ..errors import CtxevalError
from ..hashing import hash_tree

MOUNT_ROOT_ENV = "CTXEVAL_MOUNT_ROOT"
ROOT_MODE = 0o711
COMPLETE = ".ctxeval-staged"
LINK_THRESHOLD_BYTES = 64 * 1024 * 1024  # folders above this are hard-linked when possible, not copied

_lock = threading.Lock()
_staged: dict[tuple[str, tuple], Path] = {}


def stage_root() -> Path:
    configured = settings.get(MOUNT_ROOT_ENV)
    root = Path(configured) if configured else Path(tempfile.gettempdir()) / f"ctxeval-mounts-{os.getuid()}"
    try:
        root.mkdir(mode=ROOT_MODE, parents=True, exist_ok=True)
        info = root.lstat()
    except OSError as exc:
        raise CtxevalError(f"cannot create the mount staging folder {root}: {exc}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise CtxevalError(f"the mount staging folder {root} is not a folder owned by this user; "
                           f"set {MOUNT_ROOT_ENV} to a folder of your own")
    os.chmod(root, ROOT_MODE)
    return root


def _signature(folder: Path) -> tuple:
    """Cheap change detector (names, sizes, mtimes) so a folder is hashed once per change."""
    items = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            items.append((os.path.relpath(os.path.join(dirpath, name), folder), info.st_size, info.st_mtime_ns))
    return tuple(items)


def _size(signature: tuple) -> int:
    return sum(item[1] for item in signature)


def _fill(source: Path, target: Path, link: bool) -> None:
    """Copy `source` to `target` (a new folder): regular files and folders, world-readable."""
    for dirpath, dirnames, filenames in os.walk(source):
        rel = Path(dirpath).relative_to(source)
        (target / rel).mkdir(mode=0o755, exist_ok=True)
        os.chmod(target / rel, 0o755)
        for name in filenames:
            src, dst = Path(dirpath) / name, target / rel / name
            if src.is_symlink() or not src.is_file():
                continue
            if link:
                try:
                    os.link(src, dst)
                    continue
                except OSError:
                    pass
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o755 if os.stat(src).st_mode & 0o111 else 0o644)


def stage(folder: Path) -> Path:
    """The neutral path holding a copy of `folder` (made on first use)."""
    folder = Path(folder).resolve()
    signature = _signature(folder)
    key = (str(folder), signature)
    with _lock:
        if key in _staged and (_staged[key] / COMPLETE).exists():
            return _staged[key] / "content"
        target = stage_root() / hash_tree(folder)[:32]
        if not (target / COMPLETE).exists():
            scratch = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
            try:
                os.chmod(scratch, 0o755)
                _fill(folder, scratch / "content", link=_size(signature) > LINK_THRESHOLD_BYTES)
                (scratch / COMPLETE).write_text(str(folder.name) + "\n")
                try:
                    os.rename(scratch, target)
                except OSError:  # another process staged the same content first
                    if not (target / COMPLETE).exists():
                        raise
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        _staged[key] = target
        return target / "content"


def clear_stage() -> int:
    """Remove every staged folder (they are rebuilt on demand); returns how many."""
    root = stage_root()
    count = 0
    for entry in root.iterdir():
        shutil.rmtree(entry, ignore_errors=True)
        count += 1
    with _lock:
        _staged.clear()
    return count
