"""The host-side copy-out (evaluator/sandbox/artefacts.py) against hostile archives and folders:
every limit holds while reading, nothing but regular files and folders is written, nothing is
decompressed, a broken stream is recorded and what came before it kept."""
from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from evaluator.sandbox.artefacts import (BLOCK_BYTES, ArtefactLimits, copy_folder, copy_tar_stream,
                                         read_regular, tar_for_upload)


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def chunks(data: bytes, size: int = 7000):
    return (data[i:i + size] for i in range(0, len(data), size))


def disk(folder: Path) -> int:
    return sum(p.lstat().st_blocks * 512 for p in folder.rglob("*"))


def test_links_devices_fifos_and_escapes_are_skipped_and_listed(tmp_path):
    archive = tar_bytes([
        (member("./ok.txt"), b"fine"), (member("./sub", tarfile.DIRTYPE), None), (member("./sub/inner.txt"), b"deeper"),
        (member("./passwd", tarfile.SYMTYPE, "/etc/passwd"), None),
        (member("./hard", tarfile.LNKTYPE, "ok.txt"), None),
        (member("./dev", tarfile.CHRTYPE), None), (member("./pipe", tarfile.FIFOTYPE), None),
        (member("../../escape.txt"), b"owned"), (member("/abs.txt"), b"owned"),
    ])
    copy = copy_tar_stream(chunks(archive), tmp_path / "out")
    assert sorted(copy.copied) == ["ok.txt", "sub/inner.txt"]
    reasons = {s["name"]: s["reason"] for s in copy.skipped}
    assert reasons["passwd"] == "a symbolic link" and reasons["hard"] == "a hard link"
    assert reasons["dev"] == "a device" and reasons["pipe"] == "a FIFO"
    assert "not a safe relative name" in reasons["../../escape.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert not any(p.is_symlink() for p in (tmp_path / "out").rglob("*"))
    assert copy.refused is None


def test_a_compressed_stream_is_never_inflated(tmp_path):
    big = tar_bytes([(member("zeros.bin"), bytes(32 * 1024 * 1024))])
    bomb = gzip.compress(big, compresslevel=1)
    assert len(bomb) < 200_000
    copy = copy_tar_stream(chunks(bomb), tmp_path / "out")
    assert copy.copied == [] and copy.refused and "not a plain tar" in copy.refused
    assert disk(tmp_path / "out") == 0


def test_garbage_and_truncated_streams_are_refused_and_what_came_first_is_kept(tmp_path):
    assert "not a plain tar" in copy_tar_stream(chunks(b"not a tar " * 500), tmp_path / "a").refused
    good = tar_bytes([(member("first.txt"), b"1"), (member("second.bin"), os.urandom(50_000))])
    cut = good[:len(good) - 20_000]
    copy = copy_tar_stream(chunks(cut), tmp_path / "b")
    assert copy.copied == ["first.txt"] and copy.refused
    assert not (tmp_path / "b" / "second.bin").exists()  # a torn file is not kept half-written


def test_the_cap_counts_host_blocks_and_files_and_spares_the_submission(tmp_path):
    tiny = [(member(f"tiny/{i:05d}"), b"x") for i in range(3000)]
    archive = tar_bytes(tiny + [(member("predictions.csv"), b"id,target\n1,0\n")])
    limits = ArtefactLimits(max_bytes=1000 * 2 * BLOCK_BYTES, max_files=100_000)
    copy = copy_tar_stream(chunks(archive), tmp_path / "out", limits, priority=["predictions.csv"])
    assert 900 <= len(copy.copied) <= 1001  # one-byte files cost a block each (plus their entry)
    assert "predictions.csv" in copy.copied
    assert copy.skipped_total == 3001 - len(copy.copied) and len(copy.skipped) <= 1000
    assert disk(tmp_path / "out") <= limits.max_bytes + 64 * BLOCK_BYTES
    by_count = copy_tar_stream(chunks(archive), tmp_path / "count", ArtefactLimits(max_files=50),
                               priority=["predictions.csv"])
    assert len(by_count.copied) == 50 and "predictions.csv" in by_count.copied  # 48 files + the folder + it


def test_one_file_over_its_limit_is_skipped_not_truncated(tmp_path):
    archive = tar_bytes([(member("big.bin"), bytes(3 * 1024 * 1024)), (member("small.txt"), b"ok")])
    copy = copy_tar_stream(chunks(archive), tmp_path / "out", ArtefactLimits(max_file_bytes=1024 * 1024))
    assert copy.copied == ["small.txt"] and copy.skipped[0]["name"] == "big.bin"
    assert "3145728 bytes > 1048576" in copy.skipped[0]["reason"]


def test_folder_copy_never_follows_links_or_opens_fifos(tmp_path):
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("a")
    (source / "sub" / "b.txt").write_text("b")
    os.symlink("/etc/passwd", source / "leak")
    os.symlink(source / "sub", source / "dirlink")
    os.mkfifo(source / "metrics.json")
    copy = copy_folder(source, tmp_path / "out")
    assert sorted(copy.copied) == ["a.txt", "sub/b.txt"]
    assert {s["name"] for s in copy.skipped} == {"leak", "dirlink", "metrics.json"}
    assert read_regular(source / "metrics.json", 100) is None  # would block forever if opened blocking
    assert read_regular(source / "leak", 100) is None
    assert read_regular(source / "a.txt", 100) == b"a"


def test_upload_tar_carries_the_owner_asked_for_and_nothing_but_files(tmp_path):
    (tmp_path / "w" / "d").mkdir(parents=True)
    (tmp_path / "w" / "d" / "f.py").write_text("print(1)")
    os.chmod(tmp_path / "w" / "d" / "f.py", 0o755)
    os.symlink("/etc/passwd", tmp_path / "w" / "leak")
    with tar_for_upload(tmp_path / "w", 0, 0) as archive, tarfile.open(fileobj=archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"d", "d/f.py"}
    assert members["d/f.py"].uid == 0 and members["d/f.py"].mode == 0o755
    assert members["d"].isdir()


@pytest.mark.parametrize("name", ["a/../../x", "./../x", "/etc/x", "../"])
def test_unsafe_names_never_leave_the_destination(tmp_path, name):
    info = tarfile.TarInfo("placeholder")
    archive = bytearray(tar_bytes([(info, b"owned")]))
    raw = name.encode()[:100]
    archive[0:100] = raw + bytes(100 - len(raw))
    archive[148:156] = b" " * 8  # recompute the header checksum
    archive[148:155] = f"{sum(archive[0:512]):06o}\0".encode()
    copy = copy_tar_stream(chunks(bytes(archive)), tmp_path / "out")
    assert copy.copied == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert list((tmp_path / "out").rglob("*")) == []
