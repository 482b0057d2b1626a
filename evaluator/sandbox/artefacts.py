"""Copying files out of a sandbox, with every limit enforced on the host while reading.

What leaves a sandbox is untrusted: names, kinds and sizes are the agent's. The copy keeps regular
files and folders only (links, devices and FIFOs are skipped and listed), never follows a link,
never decompresses, and stops counting at `ArtefactLimits`: bytes as the host disk will hold them
(whole blocks plus one block per entry, so 100,000 one-byte files cost what they really cost),
files, one file's size and the folder depth. A stream that is not a plain tar ends the copy with a
recorded reason (`refused`); what was copied before is kept. Files named in `priority` (the
submission, the structured output) are copied even past the file and byte budgets, so a flood of
small files cannot crowd out what is graded.
"""
from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Callable, Iterable, Iterator

BLOCK_BYTES = 4096  # host filesystem block: the unit a file's disk use is counted in
MAX_ARTEFACTS_BYTES = 200 * 1024 * 1024  # one copy-out, in host blocks
MAX_ARTEFACT_FILE_BYTES = 50 * 1024 * 1024  # one file; bigger ones are skipped and listed
MAX_ARTEFACT_FILES = 30_000  # files and folders of one copy-out
MAX_ARTEFACT_DEPTH = 64  # folder nesting
MAX_STREAM_BYTES = 8 * 1024 * 1024 * 1024  # a source that never ends is cut here
MAX_SKIPPED_LISTED = 1000  # skipped names kept in the record; the rest are counted
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ArtefactLimits:
    max_bytes: int = MAX_ARTEFACTS_BYTES
    max_file_bytes: int = MAX_ARTEFACT_FILE_BYTES
    max_files: int = MAX_ARTEFACT_FILES
    max_depth: int = MAX_ARTEFACT_DEPTH


@dataclass
class ArtefactCopy:
    """What one copy-out did: names copied, names skipped with the reason, why it stopped early."""

    copied: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_total: int = 0
    refused: str | None = None
    disk_bytes: int = 0

    def skip(self, name: str, reason: str) -> None:
        self.skipped_total += 1
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append({"name": name, "reason": reason})

    def record(self) -> dict[str, object]:
        return {"copied": len(self.copied), "skipped": self.skipped_total, "disk_bytes": self.disk_bytes,
                "refused": self.refused}


@dataclass(frozen=True)
class Entry:
    """One member of a source: a relative POSIX name, its kind, size, mode and how to read it."""

    name: str
    kind: str  # "file", "dir" or a description of what it is ("a symbolic link", ...)
    size: int = 0
    mode: int = 0o644
    open: Callable[[], IO[bytes] | None] | None = None


def blocks(size: int) -> int:
    return (size + BLOCK_BYTES - 1) // BLOCK_BYTES * BLOCK_BYTES + BLOCK_BYTES


def clean_name(raw: str) -> str | None:
    """A safe relative name, or None (absolute, `..`, NUL, empty)."""
    if "\0" in raw or raw.startswith("/"):
        return None
    parts = [p for p in PurePosixPath(raw).parts if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


class _Writer:
    """Writes entries under `dest`, creating every path itself (so none is a link), within limits."""

    def __init__(self, dest: Path, limits: ArtefactLimits, priority: frozenset[str], copy: ArtefactCopy):
        self.dest, self.limits, self.priority, self.copy = dest, limits, priority, copy
        self.entries = 0
        dest.mkdir(parents=True, exist_ok=True)

    def _budget(self, name: str, cost: int) -> str | None:
        if name in self.priority:
            return None
        if self.entries >= self.limits.max_files:
            return f"over the copy-out's file limit ({self.limits.max_files})"
        if self.copy.disk_bytes + cost > self.limits.max_bytes:
            return f"over the copy-out's size limit ({self.limits.max_bytes} bytes of host disk)"
        return None

    def _parent(self, name: str) -> Path | None:
        folder = self.dest
        for part in name.split("/")[:-1]:
            folder = folder / part
            if not folder.is_dir() or folder.is_symlink():
                if folder.exists() or folder.is_symlink():
                    return None
                if not self.add_dir(str(folder.relative_to(self.dest))):
                    return None
        return folder

    def add_dir(self, name: str) -> bool:
        path = self.dest / name
        if path.is_dir() and not path.is_symlink():
            return True
        if self._budget(name, BLOCK_BYTES) is not None or self._parent(name) is None:
            return False
        try:
            os.mkdir(path, 0o755)
        except OSError:
            return False
        self.entries += 1
        self.copy.disk_bytes += BLOCK_BYTES
        return True

    def add_file(self, entry: Entry) -> None:
        if entry.size > self.limits.max_file_bytes:
            return self.copy.skip(entry.name, f"{entry.size} bytes > {self.limits.max_file_bytes}")
        why = self._budget(entry.name, blocks(entry.size))
        if why:
            return self.copy.skip(entry.name, why)
        parent = self._parent(entry.name)
        if parent is None:
            return self.copy.skip(entry.name, "its folder could not be made (a name used twice)")
        source = entry.open() if entry.open else None
        if source is None:
            return self.copy.skip(entry.name, "not readable as a regular file")
        with source:
            written = self._write(parent / entry.name.rsplit("/", 1)[-1], source, entry)
        if written is None:
            return self.copy.skip(entry.name, "could not be written (a name used twice, or it grew)")
        self.entries += 1
        self.copy.disk_bytes += blocks(written)
        self.copy.copied.append(entry.name)

    def _write(self, path: Path, source: IO[bytes], entry: Entry) -> int | None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags, 0o755 if entry.mode & 0o111 else 0o644)
        except OSError:
            return None
        written = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(min(CHUNK, self.limits.max_file_bytes + 1 - written)):
                    written += len(chunk)
                    if written > max(entry.size, 0) or written > self.limits.max_file_bytes:
                        break
                    out.write(chunk)
        except BaseException:  # the stream broke mid-file: no half-written file is kept
            path.unlink(missing_ok=True)
            raise
        if written > entry.size:
            path.unlink(missing_ok=True)
            return None
        return written


def copy_entries(entries: Iterable[Entry], dest: Path, limits: ArtefactLimits = ArtefactLimits(),
                 priority: Iterable[str] = ()) -> ArtefactCopy:
    """Copy a source's entries under `dest`; a source that breaks mid-way ends the copy, recorded."""
    copy = ArtefactCopy()
    writer = _Writer(dest, limits, frozenset(priority), copy)
    try:
        for entry in entries:
            name = clean_name(entry.name)
            if name is None:
                if entry.name.strip("./"):
                    copy.skip(entry.name[:200], "not a safe relative name")
                continue
            if name.count("/") >= limits.max_depth:
                copy.skip(name[:200], f"nested deeper than {limits.max_depth} folders")
            elif entry.kind == "dir":
                if not writer.add_dir(name):
                    copy.skip(name, "folder not copied (limits, or a name used twice)")
            elif entry.kind == "file":
                writer.add_file(Entry(name, "file", entry.size, entry.mode, entry.open))
            else:
                copy.skip(name, entry.kind)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        copy.refused = f"the copy-out stream is not a plain tar archive ({type(exc).__name__}: {exc})"[:500]
    return copy


# -- sources ----------------------------------------------------------------------------------------

class ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks (the engine's archive stream), capped."""

    def __init__(self, chunks: Iterable[bytes], max_bytes: int = MAX_STREAM_BYTES):
        self.chunks: Iterator[bytes] = iter(chunks)
        self.pending = b""
        self.total = 0
        self.max_bytes = max_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self.pending:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.total += len(chunk)
            if self.total > self.max_bytes:
                raise OSError(f"the stream passed {self.max_bytes} bytes")
            self.pending = chunk
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


TAR_KINDS = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a device",
             tarfile.BLKTYPE: "a device", tarfile.FIFOTYPE: "a FIFO"}


def tar_entries(stream: IO[bytes]) -> Iterator[Entry]:
    """Entries of an uncompressed tar stream, read in one pass (no seeking, no decompression)."""
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.isreg():
                yield Entry(member.name, "file", member.size, member.mode, lambda m=member: tar.extractfile(m))
            elif member.isdir():
                yield Entry(member.name, "dir")
            else:
                yield Entry(member.name, TAR_KINDS.get(member.type, "not a regular file"))


def open_regular(path: Path | str) -> IO[bytes] | None:
    """Open a regular file without following a link or blocking on a FIFO; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular(path: Path | str, max_bytes: int) -> bytes | None:
    """At most `max_bytes` of a regular file (never a link, FIFO or device), or None."""
    handle = open_regular(path)
    if handle is None:
        return None
    with handle:
        return handle.read(max_bytes)


def folder_entries(root: Path) -> Iterator[Entry]:
    """Entries of a host folder, sorted, never following a link (the local backend's workspace)."""
    def walk(folder: Path, prefix: str) -> Iterator[Entry]:
        try:
            items = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for item in items:
            name = f"{prefix}{item.name}"
            info = item.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                yield Entry(name, "dir")
                yield from walk(Path(item.path), name + "/")
            elif stat.S_ISREG(info.st_mode):
                yield Entry(name, "file", info.st_size, info.st_mode, lambda p=item.path: open_regular(p))
            else:
                yield Entry(name, "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file")
    return walk(root, "")


def copy_tar_stream(chunks: Iterable[bytes], dest: Path, limits: ArtefactLimits = ArtefactLimits(),
                    priority: Iterable[str] = ()) -> ArtefactCopy:
    reader = io.BufferedReader(ChunkReader(chunks), buffer_size=CHUNK)
    copy = ArtefactCopy()
    try:
        copy = copy_entries(tar_entries(reader), dest, limits, priority)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:  # the header itself was bad
        copy.refused = f"the copy-out stream is not a plain tar archive ({type(exc).__name__}: {exc})"[:500]
    return copy


def copy_folder(folder: Path, dest: Path, limits: ArtefactLimits = ArtefactLimits(),
                priority: Iterable[str] = ()) -> ArtefactCopy:
    return copy_entries(folder_entries(folder), dest, limits, priority)


# -- into a sandbox --------------------------------------------------------------------------------------

def tar_for_upload(folder: Path | None, uid: int, gid: int, file_mode: int = 0o644) -> IO[bytes]:
    """A tar of a vetted host folder (regular files and folders only) owned by uid:gid, spooled to
    disk past 16 MiB. The caller closes it."""
    spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
    with tarfile.open(fileobj=spool, mode="w") as tar:
        for entry in folder_entries(folder) if folder is not None else ():
            info = tarfile.TarInfo(entry.name)
            info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
            if entry.kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif entry.kind == "file" and entry.open is not None:
                handle = entry.open()
                if handle is None:
                    continue
                with handle:
                    info.size = os.fstat(handle.fileno()).st_size
                    info.mode = file_mode | (0o111 if entry.mode & 0o111 else 0)
                    tar.addfile(info, handle)
    spool.seek(0)
    return spool
