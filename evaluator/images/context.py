"""Deterministic build-context tarballs: what is sent to the daemon is exactly what is hashed."""
from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from ..hashing import iter_files


def build_context(files: dict[str, Path]) -> bytes:
    """A tar of {name in context: host path (file or folder)}, with fixed owners and mtimes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            source = files[name]
            for file in iter_files(source):
                arcname = name if source.is_file() else f"{name}/{file.relative_to(source).as_posix()}"
                info = tarfile.TarInfo(arcname)
                data = file.read_bytes()
                info.size = len(data)
                info.mode = 0o755 if file.stat().st_mode & 0o111 else 0o644
                info.mtime = 0
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def context_hash(context: bytes, *extra: str) -> str:
    digest = hashlib.sha256(context)
    for item in extra:
        digest.update(b"\0" + item.encode())
    return digest.hexdigest()
