"""The data stage: run a bundle's host-side `prepare` command once and cache its output.

Output lives under the cache (never in the project): <cache>/data/<bundle>/<input hash>/ with
`public/` (mounted read-only in every sandbox) and `private/` (mounted only for grading).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import CtxevalError
from ..hashing import hash_paths
from ..paths import cache_dir
from .bundle_lib import data_stage_environment, library_extra
from .fetch import missing_raw_files, raw_dir
from .manifest import Bundle

COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class PreparedData:
    root: Path | None
    public: Path | None
    private: Path | None


def _make_world_readable(root: Path) -> None:
    """Sandboxes run as an unprivileged uid; bind-mounted data must be readable by it."""
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)


def data_dir(bundle: Bundle) -> Path | None:
    """The prepared data's folder, keyed by the whole bundle (a prepare script may read any of
    its files), the prepare arguments and the raw files. Per base bundle: variants with the same
    data stage share the folder, one with other prepare arguments gets its own."""
    if bundle.data is None:
        return None
    extra = [bundle.base_id, bundle.version, *bundle.data.prepare, *library_extra(bundle)]
    if bundle.data.fetch is not None:
        raw = raw_dir(bundle)
        extra.append(hash_paths([raw / name for name in bundle.data.fetch.files if (raw / name).is_file()], raw))
    key = hash_paths([bundle.root], bundle.root, extra=extra)
    return cache_dir() / "data" / bundle.base_id / key[:16]


def prepare_data(bundle: Bundle, force: bool = False, extra_args: list[str] | None = None) -> PreparedData:
    """Run the prepare command if its output is not cached yet; return the public/private paths."""
    out = data_dir(bundle)
    if out is None or bundle.data is None:
        return PreparedData(None, None, None)
    if force and out.exists():
        shutil.rmtree(out)
    missing = missing_raw_files(bundle)
    if missing:
        raise CtxevalError(f"bundle {bundle.id!r} needs its raw data first ({', '.join(missing)} missing in "
                           f"{raw_dir(bundle)}): run `ctxeval data fetch {bundle.id}` (or with --from DIR)")
    if not (out / COMPLETE_MARKER).exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out.parent))
        cmd = [sys.executable, str(bundle.root / bundle.data.prepare[0])]
        cmd += [arg.replace("{out}", str(staging)).replace("{raw}", str(raw_dir(bundle)))
                for arg in bundle.data.prepare[1:]]
        cmd += extra_args or []
        proc = subprocess.run(cmd, cwd=bundle.root, capture_output=True, text=True, env=data_stage_environment(bundle))
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise CtxevalError(f"data stage of bundle {bundle.id!r} failed ({' '.join(cmd)}):\n"
                               f"{proc.stderr.strip() or proc.stdout.strip()}")
        _make_world_readable(staging)
        (staging / COMPLETE_MARKER).write_text("ok\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    public = out / bundle.data.public if bundle.data.public else None
    private = out / bundle.data.private if bundle.data.private else None
    for name, path in (("public", public), ("private", private)):
        if path is not None and not path.is_dir():
            raise CtxevalError(f"data stage of bundle {bundle.id!r} did not create its {name} folder {path}")
    return PreparedData(out, public, private)
