#!/usr/bin/env python3
"""Build the ctxeval root filesystem image without any container registry.

A Debian rootfs is made by mmdebstrap (or debootstrap) from the mirror the host's apt already
uses, read at run time from the host's apt sources. The Python wheels in requirements.txt are
downloaded on the host with pip (whatever index the host's pip is configured with) and installed
inside the rootfs with ``--no-index``. Host details (resolv.conf, hostname) are blanked and the
tree is loaded with ``docker import``.

The result is the *rootfs* image; the top-level Dockerfile then builds the base image FROM it.
Needs root (chroot). Usage:

    python scripts/base_image/build_offline.py --tag ctxeval/rootfs:abc123 [--label k=v ...]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = "/opt/ctxeval/venv"
DEBIAN_PACKAGES = ["python3", "python3-venv", "procps", "ca-certificates"]
IMAGE_PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str
    components: tuple[str, ...]


def host_codename() -> str:
    text = Path("/etc/os-release").read_text()
    match = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.M)
    if not match:
        raise SystemExit("cannot read VERSION_CODENAME from /etc/os-release")
    return match.group(1)


def _one_line_sources(text: str) -> list[AptSource]:
    found = []
    for line in text.splitlines():
        line = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
        if len(line) >= 3 and line[0] == "deb":
            found.append(AptSource(line[1], line[2], tuple(line[3:])))
    return found


def _deb822_sources(text: str) -> list[AptSource]:
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                found.append(AptSource(uri, suite, tuple(fields.get("components", "").split())))
    return found


def host_apt_sources(root: Path = Path("/etc/apt")) -> list[AptSource]:
    """Every `deb` source the host's apt is configured with, in apt's reading order."""
    sources: list[AptSource] = []
    main_list = root / "sources.list"
    if main_list.exists():
        sources += _one_line_sources(main_list.read_text())
    for path in sorted((root / "sources.list.d").glob("*")):
        if path.suffix == ".list":
            sources += _one_line_sources(path.read_text())
        elif path.suffix == ".sources":
            sources += _deb822_sources(path.read_text())
    return sources


def pick_mirror(codename: str) -> str:
    override = os.environ.get("CTXEVAL_APT_MIRROR")
    if override:
        return override
    for source in host_apt_sources():
        if source.suite == codename and "main" in source.components:
            return source.uri
    raise SystemExit(
        f"no apt source for suite {codename!r} with component 'main' in /etc/apt; "
        "set CTXEVAL_APT_MIRROR to a Debian mirror URL"
    )


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def make_rootfs(rootfs: Path, codename: str, mirror: str) -> None:
    include = ",".join(DEBIAN_PACKAGES)
    if shutil.which("mmdebstrap"):
        run(["mmdebstrap", "--variant=minbase", "--mode=root", f"--include={include}",
             codename, str(rootfs), mirror])
    elif shutil.which("debootstrap"):
        run(["debootstrap", "--variant=minbase", f"--include={include}", codename, str(rootfs), mirror])
    else:
        raise SystemExit("neither mmdebstrap nor debootstrap is installed (apt-get install mmdebstrap)")


def rootfs_python_version(rootfs: Path) -> str:
    out = subprocess.run(["chroot", str(rootfs), "python3", "-c",
                          "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def download_wheels(dest: Path, python_version: str, requirements: Path) -> None:
    """pip on the host fetches binary wheels for the rootfs's Python, from the host's index."""
    platforms = ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64",
                 "manylinux_2_27_x86_64", "manylinux_2_24_x86_64"]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(dest),
           "--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
           "-r", str(requirements), "pip"]
    for platform in platforms:
        cmd += ["--platform", platform]
    run(cmd)


def install_wheels(rootfs: Path, wheels: Path, requirements: Path) -> None:
    inside = rootfs / "tmp" / "ctxeval-wheels"
    shutil.copytree(wheels, inside)
    shutil.copy(requirements, inside / "requirements.txt")
    run(["chroot", str(rootfs), "python3", "-m", "venv", "--without-pip", VENV])
    pip_wheel = next(inside.glob("pip-*.whl")).name
    run(["chroot", str(rootfs), f"{VENV}/bin/python", f"/tmp/ctxeval-wheels/{pip_wheel}/pip",
         "install", "--no-index", "--no-cache-dir", "--find-links", "/tmp/ctxeval-wheels",
         "pip", "-r", "/tmp/ctxeval-wheels/requirements.txt"])
    shutil.rmtree(inside)


def blank_host_details(rootfs: Path) -> None:
    for name in ("etc/resolv.conf", "etc/hostname", "etc/mailname"):
        path = rootfs / name
        if path.is_symlink() or path.exists():
            path.unlink()
        if name != "etc/mailname":
            path.write_text("")
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        target = rootfs / cache
        if target.is_dir():
            for child in target.iterdir():
                if child.is_file():
                    child.unlink()


def docker_import(rootfs: Path, tag: str, labels: list[str]) -> None:
    import docker  # host dependency of ctxeval

    repository, _, version = tag.rpartition(":")
    changes = [f"ENV PATH={IMAGE_PATH}", "ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]']
    changes += [f"LABEL {label.split('=', 1)[0]}={label.split('=', 1)[1]}" for label in labels]
    with tempfile.TemporaryDirectory(prefix="ctxeval-rootfs-tar-") as tmp:
        archive = Path(tmp) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            for child in sorted(rootfs.iterdir()):
                tar.add(child, arcname=child.name)
        print(f"+ docker import {archive} {tag}", file=sys.stderr, flush=True)
        client = docker.from_env(timeout=600)
        client.api.import_image_from_file(str(archive), repository=repository, tag=version,
                                          changes=changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", help="image tag to create, e.g. ctxeval/rootfs:abc")
    parser.add_argument("--print-suite", action="store_true", help="print the suite that would be used")
    parser.add_argument("--label", action="append", default=[], help="k=v label, repeatable")
    parser.add_argument("--requirements", type=Path, default=HERE / "requirements.txt")
    parser.add_argument("--suite", default=None, help="Debian suite (default: the host's)")
    args = parser.parse_args(argv)
    if args.print_suite:
        print(args.suite or host_codename())
        return 0
    if not args.tag:
        parser.error("--tag is required")
    if os.geteuid() != 0:
        raise SystemExit("building the offline rootfs needs root (chroot); run with sudo")
    codename = args.suite or host_codename()
    mirror = pick_mirror(codename)
    print(f"rootfs: suite {codename} from {mirror}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="ctxeval-rootfs-") as tmp:
        rootfs, wheels = Path(tmp) / "rootfs", Path(tmp) / "wheels"
        make_rootfs(rootfs, codename, mirror)
        download_wheels(wheels, rootfs_python_version(rootfs), args.requirements)
        install_wheels(rootfs, wheels, args.requirements)
        blank_host_details(rootfs)
        docker_import(rootfs, args.tag, args.label)
    print(args.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
