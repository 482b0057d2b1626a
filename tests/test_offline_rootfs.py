"""The offline base script reads the mirror from the host's apt configuration, in both formats."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from evaluator.images.builder import OFFLINE_SCRIPT


@pytest.fixture(scope="module")
def offline():
    spec = importlib.util.spec_from_file_location("build_offline_under_test", OFFLINE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_reads_deb822_and_one_line_sources(tmp_path, offline):
    write(tmp_path, "sources.list", "# comment\ndeb [arch=amd64] http://mirror.one/debian trixie main contrib\n"
                                    "deb-src http://mirror.one/debian trixie main\n")
    write(tmp_path, "sources.list.d/debian.sources",
          "Types: deb\nURIs: http://mirror.two/debian\nSuites: bookworm bookworm-updates\n"
          "Components: main\nSigned-By: /usr/share/keyrings/x.gpg\n\n"
          "Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n")
    write(tmp_path, "sources.list.d/other.list.disabled", "deb http://never.example/debian bookworm main\n")
    sources = offline.host_apt_sources(tmp_path)
    assert [(s.uri, s.suite) for s in sources] == [
        ("http://mirror.one/debian", "trixie"),
        ("http://mirror.two/debian", "bookworm"),
        ("http://mirror.two/debian", "bookworm-updates"),
    ]
    assert sources[0].components == ("main", "contrib")


def test_pick_mirror_matches_the_suite_and_honours_the_override(tmp_path, offline, monkeypatch):
    write(tmp_path, "sources.list.d/debian.sources",
          "Types: deb\nURIs: http://mirror.two/debian\nSuites: bookworm\nComponents: main\n")
    monkeypatch.setattr(offline, "host_apt_sources", lambda: offline._deb822_sources(
        (tmp_path / "sources.list.d/debian.sources").read_text()))
    assert offline.pick_mirror("bookworm") == "http://mirror.two/debian"
    with pytest.raises(SystemExit, match="no apt source for suite 'sid'"):
        offline.pick_mirror("sid")
    monkeypatch.setenv("CTXEVAL_APT_MIRROR", "http://override.example/debian")
    assert offline.pick_mirror("sid") == "http://override.example/debian"


def test_this_host_has_a_usable_mirror(offline):
    """The machine the tests run on must be able to build the base offline."""
    assert offline.pick_mirror(offline.host_codename()).startswith(("http://", "https://"))
