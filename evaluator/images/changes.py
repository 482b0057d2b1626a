"""`ctxeval build --changed-since REF`: which images' input hashes differ from those at a git REF.

The decision is by input hash, never by file names: the base image's and every bundle image's
input hash is computed twice with the same functions `ImageBuilder` builds by — once over the
working tree (uncommitted changes included, as `ctxeval build` would build it) and once over the
files as they are at REF (exported with `git archive` into a temporary folder; the repository
itself is not touched). An image is built when the two differ; a changed base changes every
bundle's hash, so it rebuilds every bundle.
"""
from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..bundles.manifest import Bundle
from ..errors import CtxevalError, ValidationFailed
from ..paths import PROJECT_ROOT
from .builder import TAG_HEX, ImageBuilder, base_inputs, base_tag, bundle_input_hash, bundle_tag


@dataclass(frozen=True)
class Decision:
    """Whether one image is built, and why."""

    name: str               # "base" or the bundle id
    tag: str                # the tag the working tree's inputs give
    new_hash: str
    old_hash: str | None    # None: the image did not exist at REF (or its inputs could not be read there)
    build: bool
    reason: str


@dataclass(frozen=True)
class ChangePlan:
    ref: str
    commit: str
    base: Decision
    bundles: list[tuple[Bundle, Decision]]

    @property
    def to_build(self) -> list[Bundle]:
        return [bundle for bundle, decision in self.bundles if decision.build]


def _git(args: list[str], cwd: Path, binary: bool = False) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=not binary)
    except FileNotFoundError:
        raise CtxevalError("--changed-since needs git, and git is not installed") from None


def _stderr(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else proc.stderr
    return (err or "").strip().splitlines()[-1] if (err or "").strip() else f"exit code {proc.returncode}"


def git_toplevel(path: Path) -> Path:
    proc = _git(["rev-parse", "--show-toplevel"], cwd=path)
    if proc.returncode != 0:
        raise CtxevalError(f"--changed-since compares with a git revision, but {path} is not inside a git "
                           f"repository ({_stderr(proc)})")
    return Path(proc.stdout.strip()).resolve()


def resolve_commit(ref: str, repo: Path) -> str:
    """The full commit id REF names in `repo`; a clear error for anything else."""
    if not ref or ref.startswith("-") or set(ref) == {"0"}:
        raise CtxevalError(f"--changed-since {ref!r}: not a git revision")
    proc = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], cwd=repo)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise CtxevalError(f"--changed-since {ref!r}: no such commit in the git repository at {repo} "
                           "(a typo, or a shallow clone without that history? `git fetch --unshallow`)")
    return proc.stdout.strip()


def _exists_at(commit: str, rel: str, repo: Path) -> bool:
    return _git(["cat-file", "-e", f"{commit}:{rel}"], cwd=repo).returncode == 0


def export_at(commit: str, rel_paths: list[str], repo: Path, dest: Path) -> set[str]:
    """Write the given repository paths as they are at `commit` under `dest`; returns those that existed."""
    present = sorted({rel for rel in rel_paths if _exists_at(commit, rel, repo)})
    if not present:
        return set()
    proc = _git(["archive", "--format=tar", commit, "--", *present], cwd=repo, binary=True)
    if proc.returncode != 0:
        raise CtxevalError(f"git archive {commit[:12]} failed: {_stderr(proc)}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(dest, filter="tar")
        else:  # pragma: no cover - Python < 3.11.4
            tar.extractall(dest)
    return set(present)


def _relative(path: Path, top: Path, what: str) -> str:
    try:
        return path.resolve().relative_to(top).as_posix()
    except ValueError:
        raise CtxevalError(f"--changed-since: {what} {path} is outside the git repository {top}; "
                           "it can only compare inside one repository") from None


def _base_decision(builder: ImageBuilder, project_root: Path, then_root: Path, top: Path, ref: str) -> Decision:
    """The base image: built when its input hash differs from REF's, or its inputs did not exist there."""
    new_base = builder.base_input_hash(project_root)
    then_inputs = base_inputs(then_root)
    needed = ["dockerfile", "requirements"]
    if builder.resolved_base_source() == "offline":
        needed.append("offline_script")  # the rootfs is made by it
    missing = [_relative(base_inputs(project_root)[key], top, "base input") for key in needed
               if not then_inputs[key].is_file()]
    old_base = None if missing else builder.base_input_hash(then_root)
    tag = base_tag(new_base)
    if old_base == new_base:
        return Decision("base", tag, new_base, old_base, False, f"inputs unchanged since {ref} ({new_base[:TAG_HEX]})")
    if old_base is None:
        return Decision("base", tag, new_base, None, True,
                        f"{', '.join(missing)} did not exist at {ref}: every bundle is rebuilt")
    return Decision("base", tag, new_base, old_base, True,
                    f"inputs changed since {ref} ({old_base[:TAG_HEX]} -> {new_base[:TAG_HEX]}): "
                    "every bundle is rebuilt")


def _load_then(then_path: Path, rel: str, ref: str) -> tuple[Bundle | None, str]:
    """The bundle as it was at REF, or None and why it cannot be compared."""
    from ..bundles import MANIFEST_NAME, load_bundle
    from ..bundles.registry import has_manifest
    if not has_manifest(then_path):
        return None, f"new since {ref} (no {rel}/{MANIFEST_NAME} there)"
    try:
        return load_bundle(then_path), ""
    except CtxevalError as exc:
        first = (exc.violations[0] if isinstance(exc, ValidationFailed) and exc.violations
                 else str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None, f"its manifest at {ref} does not load here ({first}): built to be safe"


def _bundle_decision(bundle: Bundle, then_path: Path, rel: str, base: Decision, ref: str) -> Decision:
    """One bundle's image: built when its input hash (the base's included) or its id changed since REF."""
    new = bundle_input_hash(bundle, base.new_hash)
    old, renamed = None, False
    then, reason = _load_then(then_path, rel, ref)
    if then is not None:
        old = bundle_input_hash(then, base.old_hash) if base.old_hash else None
        renamed = then.base_id != bundle.base_id  # images are per base bundle (not variant)
        if renamed:
            reason = f"its id changed since {ref} ({then.base_id} -> {bundle.base_id})"
        elif old == new:
            reason = f"input hash unchanged since {ref} ({new[:TAG_HEX]})"
        elif base.build:
            reason = "the base image changed"
        else:
            reason = f"image inputs changed since {ref} ({old[:TAG_HEX]} -> {new[:TAG_HEX]})"
    return Decision(bundle.id, bundle_tag(bundle.base_id, new), new, old, build=renamed or old != new, reason=reason)


def plan_changed_since(builder: ImageBuilder, bundles: list[Bundle], ref: str,
                       project_root: Path = PROJECT_ROOT) -> ChangePlan:
    """Compare the base's and each bundle's input hash in the working tree with those at REF."""
    top = git_toplevel(project_root)
    commit = resolve_commit(ref, top)
    project_rel = _relative(project_root, top, "the project")
    base_rels = [_relative(path, top, "base input") for path in base_inputs(project_root).values()]
    bundle_rels = [_relative(bundle.root, top, f"bundle {bundle.id}") for bundle in bundles]
    with tempfile.TemporaryDirectory(prefix="ctxeval-changed-since-") as tmp:
        then_top = Path(tmp)
        export_at(commit, base_rels + bundle_rels, top, then_top)
        then_root = then_top / project_rel if project_rel != "." else then_top
        base = _base_decision(builder, project_root, then_root, top, ref)
        decisions = [(bundle, _bundle_decision(bundle, then_top / rel, rel, base, ref))
                     for bundle, rel in zip(bundles, bundle_rels)]
    return ChangePlan(ref=ref, commit=commit, base=base, bundles=decisions)
