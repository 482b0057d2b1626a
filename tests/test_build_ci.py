"""`ctxeval build --changed-since REF` and `--push REGISTRY`, and the GitHub Actions workflow.

--changed-since decides by input hash: the tests commit changes to a throwaway git repository
holding a copy of the project's base-image inputs and bundles (the toy bundle, whose image
context is only its Dockerfile, and a "probe" bundle whose image context also holds its tools,
grader and starter) and check which images the plan — and the real command — build.
--push is checked against a local fake registry (tests/fake_registry.py) that verifies the
sha256 of every upload: it must hold the manifest and every layer the local image is made of.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evaluator.bundles import load_bundle
from evaluator.cli import app
from evaluator.errors import CtxevalError
from evaluator.images import ImageBuilder, ImageRef
from evaluator.images.builder import LABEL_INPUT_HASH, TAG_HEX, bundle_input_hash
from evaluator.images.changes import plan_changed_since
from evaluator.images.push import normalize_registry, push_image, registry_auth, remote_tag
from evaluator.paths import BUNDLES_DIR, PROJECT_ROOT
from fake_registry import FakeRegistry, sha256_digest

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "ci.yml"
BASE_FILES = ["Dockerfile", "scripts/base_image/requirements.txt", "scripts/base_image/build_offline.py"]
CODE_DIRS = ["evaluator", "policies"]  # the JSON Schemas are in evaluator/schemas/
PROBE_DOCKERFILE = """ARG BASE_IMAGE
FROM {parent}
COPY . /opt/probe/
"""
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


class NoDocker:
    """A client stand-in: planning with base_source="registry" never talks to the engine."""

    def __getattr__(self, name):
        raise AssertionError(f"the plan asked the Docker engine ({name})")


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "user.name=ctxeval tests", "-c", "user.email=tests@example.invalid",
                           "-c", "commit.gpgsign=false", *args], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)


def make_probe(bundles_dir: Path, probe_id: str, parent: str = "${BASE_IMAGE}") -> Path:
    """A copy of the toy bundle whose image holds its tools, grader and starter (image inputs).
    `parent`: what it is built FROM; the input hash covers the base whatever the Dockerfile says."""
    probe = bundles_dir / probe_id
    shutil.copytree(BUNDLES_DIR / "toy", probe, ignore=IGNORE)
    manifest = probe / "bundle.yaml"
    text = manifest.read_text().replace("id: toy\n", f"id: {probe_id}\n", 1)
    text = text.replace("context: [Dockerfile]", "context: [Dockerfile, tools, grader, starter]", 1)
    assert f"id: {probe_id}" in text and "context: [Dockerfile, tools, grader, starter]" in text
    manifest.write_text(text)
    (probe / "Dockerfile").write_text(PROBE_DOCKERFILE.format(parent=parent))
    return probe


def make_repo(root: Path, probe_id: str, with_code: bool = False, parent: str = "${BASE_IMAGE}") -> Path:
    """A git repository holding the base-image inputs, README, the toy bundle and a probe bundle
    (with_code: also the evaluator, so `python -m evaluator` run there treats it as the project)."""
    root.mkdir(parents=True)
    for rel in BASE_FILES + ["README.md", "pyproject.toml"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / rel, root / rel)
    if with_code:
        for rel in CODE_DIRS:
            shutil.copytree(PROJECT_ROOT / rel, root / rel, ignore=IGNORE)
    shutil.copytree(BUNDLES_DIR / "toy", root / "bundles" / "toy", ignore=IGNORE)
    make_probe(root / "bundles", probe_id, parent)
    git(root, "init", "-q")
    commit_all(root, "initial")
    return root


def bundles_in(root: Path):
    return [load_bundle(p.parent) for p in sorted((root / "bundles").glob("*/bundle.yaml"))]


def plan(root: Path, ref: str = "HEAD~1", base_source: str = "registry", codename: str | None = None):
    builder = ImageBuilder(client=NoDocker(), base_source=base_source)
    if codename:
        builder._codename = codename  # the host's Debian suite, fixed so no subprocess asks for it
    result = plan_changed_since(builder, bundles_in(root), ref, project_root=root)
    return result, {bundle.id: decision for bundle, decision in result.bundles}


def touch(path: Path, text: str = "\n# touched by a test\n") -> None:
    path.write_text(path.read_text() + text)


# -- the plan: by input hash, not by file names (no Docker) ------------------------------------------

def test_a_readme_change_builds_nothing(tmp_path):
    repo = make_repo(tmp_path / "repo", "probe")
    touch(repo / "README.md")
    touch(repo / "bundles" / "probe" / "README.md")
    touch(repo / "bundles" / "toy" / "task.md")        # not an image input either
    commit_all(repo, "docs")
    result, decisions = plan(repo)
    assert result.commit == git(repo, "rev-parse", "HEAD~1")
    assert not result.base.build and result.base.old_hash == result.base.new_hash
    assert not result.to_build
    for decision in decisions.values():
        assert not decision.build and decision.old_hash == decision.new_hash
        assert decision.reason.startswith("input hash unchanged since HEAD~1")


@pytest.mark.parametrize("part", ["tools/train_and_evaluate.py", "grader/grade.py", "starter/train.py"])
def test_a_changed_image_input_builds_exactly_that_bundle(tmp_path, part):
    repo = make_repo(tmp_path / "repo", "probe")
    touch(repo / "bundles" / "probe" / part)
    touch(repo / "bundles" / "toy" / part)   # the same file in toy: not in toy's image context
    commit_all(repo, f"change {part}")
    result, decisions = plan(repo)
    assert not result.base.build
    assert [b.id for b in result.to_build] == ["probe"]
    probe = decisions["probe"]
    assert probe.old_hash and probe.old_hash != probe.new_hash
    assert "image inputs changed since HEAD~1" in probe.reason
    assert probe.tag == f"ctxeval/bundle-probe:{probe.new_hash[:TAG_HEX]}"
    assert not decisions["toy"].build and "unchanged" in decisions["toy"].reason


def test_the_planned_hash_is_the_one_the_builder_uses(tmp_path):
    repo = make_repo(tmp_path / "repo", "probe")
    touch(repo / "bundles" / "probe" / "tools" / "toylib.py")
    result, decisions = plan(repo, "HEAD")          # uncommitted changes count
    probe = load_bundle(repo / "bundles" / "probe")
    assert decisions["probe"].build
    assert decisions["probe"].new_hash == bundle_input_hash(probe, result.base.new_hash)
    git(repo, "stash", "-q")
    assert decisions["probe"].old_hash == bundle_input_hash(load_bundle(repo / "bundles" / "probe"),
                                                            result.base.new_hash)


def test_a_base_change_rebuilds_every_bundle(tmp_path):
    repo = make_repo(tmp_path / "repo", "probe")
    touch(repo / "Dockerfile", "\nLABEL org.example.touched=yes\n")
    commit_all(repo, "base")
    result, decisions = plan(repo)
    assert result.base.build and "every bundle is rebuilt" in result.base.reason
    assert sorted(b.id for b in result.to_build) == ["probe", "toy"]
    assert all(d.reason == "the base image changed" for d in decisions.values())


def test_the_offline_script_is_a_base_input_only_for_an_offline_base(tmp_path):
    repo = make_repo(tmp_path / "repo", "probe")
    touch(repo / "scripts" / "base_image" / "build_offline.py")
    commit_all(repo, "offline script")
    registry_plan, _ = plan(repo, base_source="registry")
    assert not registry_plan.base.build and not registry_plan.to_build
    offline_plan, _ = plan(repo, base_source="offline", codename="bookworm")
    assert offline_plan.base.build and len(offline_plan.to_build) == 2


def test_a_new_bundle_is_built(tmp_path):
    repo = make_repo(tmp_path / "repo", "probe")
    make_probe(repo / "bundles", "second")
    commit_all(repo, "a second bundle")
    result, decisions = plan(repo)
    assert [b.id for b in result.to_build] == ["second"]
    assert decisions["second"].old_hash is None and decisions["second"].reason.startswith("new since HEAD~1")


def test_a_bad_ref_is_a_clear_error(tmp_path):
    repo = make_repo(tmp_path / "repo", "probe")
    with pytest.raises(CtxevalError, match=r"--changed-since 'no-such-branch': no such commit in the git "
                                           rf"repository at {re.escape(str(repo.resolve()))}"):
        plan(repo, "no-such-branch")
    with pytest.raises(CtxevalError, match="not a git revision"):
        plan(repo, "0" * 40)        # what GitHub sends as `before` for a new branch
    plain = tmp_path / "plain"
    shutil.copytree(repo, plain, ignore=shutil.ignore_patterns(".git"))
    with pytest.raises(CtxevalError, match="is not inside a git repository"):
        plan(plain, "HEAD")


def test_the_cli_rejects_a_bad_ref_before_asking_docker():
    result = CliRunner().invoke(app, ["build", "toy", "--changed-since", "no-such-ref-x1"])
    assert result.exit_code == 2, result.output
    assert "error:" in result.stderr and "'no-such-ref-x1': no such commit" in result.stderr
    assert "Traceback" not in result.output


# -- push helpers (no Docker) ----------------------------------------------------------------------------

class FakeImage:
    def tag(self, repository, tag):
        return True


class FakeImages:
    def __init__(self, lines):
        self.lines = lines

    def get(self, name):
        return FakeImage()

    def push(self, repository, tag=None, stream=False, decode=False, auth_config=None):
        assert stream and decode
        return iter(self.lines)


class FakeClient:
    def __init__(self, lines):
        self.images = FakeImages(lines)


def test_an_error_line_in_the_push_stream_fails_the_push():
    lines = [{"status": "The push refers to repository [r.example:5000/ctxeval/base]"},
             {"status": "Preparing", "id": "abc"},
             {"errorDetail": {"message": "denied: no"}, "error": "denied: no"},
             {"aux": {"Digest": "sha256:" + "0" * 64}}]
    with pytest.raises(CtxevalError, match=r"pushing r\.example:5000/ctxeval/base:1234 to registry "
                                           r"r\.example:5000 failed: denied: no"):
        push_image(FakeClient(lines), "ctxeval/base:1234", "r.example:5000")
    with pytest.raises(CtxevalError, match="ended without a digest"):
        push_image(FakeClient([{"status": "Pushed"}]), "ctxeval/base:1234", "r.example:5000")
    ok = push_image(FakeClient([{"aux": {"Tag": "1234", "Digest": "sha256:" + "1" * 64, "Size": 9}}]),
                    "ctxeval/base:1234", "r.example:5000")
    assert ok.remote == "r.example:5000/ctxeval/base:1234" and ok.digest == "sha256:" + "1" * 64
    assert ok.reference == "r.example:5000/ctxeval/base@sha256:" + "1" * 64


def test_registry_names_and_credentials():
    assert normalize_registry("localhost:5000/") == "localhost:5000"
    assert normalize_registry("ghcr.io/some-org") == "ghcr.io/some-org"
    assert remote_tag("ghcr.io/org", "ctxeval/bundle-toy:ab") == "ghcr.io/org/ctxeval/bundle-toy:ab"
    for bad in ("https://ghcr.io/org", "ghcr.io/Org", "", "host:port"):
        with pytest.raises(CtxevalError, match="--push"):
            normalize_registry(bad)
    assert registry_auth(None, {}) is None
    assert registry_auth("bob", {"DOCKER_PASSWORD": "s3cret"}) == {"username": "bob", "password": "s3cret"}
    with pytest.raises(CtxevalError, match="DOCKER_PASSWORD") as info:
        registry_auth("bob", {})
    assert "s3cret" not in str(info.value)


# -- the workflow -------------------------------------------------------------------------------------------

def test_the_workflow_parses_and_runs_what_ci_relies_on():
    doc = yaml.safe_load(WORKFLOW.read_text())
    triggers = doc.get("on", doc.get(True))       # YAML 1.1 reads a bare `on` key as true
    assert {"push", "pull_request"} <= set(triggers)
    job = doc["jobs"]["test"]
    assert job["runs-on"].startswith("ubuntu") and job["env"]["CI"] == "true"
    steps = job["steps"]
    uses = {step["uses"].split("@")[0]: step for step in steps if "uses" in step}
    assert uses["actions/checkout"]["with"]["fetch-depth"] == 0
    assert str(uses["actions/setup-python"]["with"]["python-version"]) == "3.11"
    runs = [step.get("run", "") for step in steps]

    def index(pattern: str) -> int:
        found = [i for i, text in enumerate(runs) if re.search(pattern, text)]
        assert found, f"no step runs {pattern!r}"
        return found[0]

    apt = index(r"apt-get install .*mmdebstrap")
    assert "chromium" in runs[apt]
    setup = index(r"bash scripts/setup\.sh")
    built = index(r"ctxeval build --changed-since \"\$since\"")
    assert re.search(r"else\s.*\n\s*\.venv/bin/ctxeval build\n", runs[built]), "no fallback to a full build"
    check = index(r"for manifest in bundles/\*/bundle\.yaml.*\n.*\n.*\n\s*\.venv/bin/ctxeval check \"\$bundle\"")
    tests = index(r"^\.venv/bin/python -m pytest")
    assert steps[tests]["env"]["CI"] == "true"
    login = next(i for i, step in enumerate(steps) if step.get("uses", "").startswith("docker/login-action"))
    assert steps[login]["with"]["registry"] == "ghcr.io"
    push = index(r"--push \"\$registry\"")
    assert 'registry="ghcr.io/${OWNER,,}"' in runs[push]
    assert steps[push]["env"]["OWNER"] == "${{ github.repository_owner }}"
    on_main = "github.ref == 'refs/heads/main' && github.event_name != 'pull_request'"
    assert steps[login]["if"] == on_main and steps[push]["if"] == on_main
    assert apt < setup < built < check < tests < login < push
    assert doc["jobs"]["test"]["permissions"]["packages"] == "write"


# -- with the Docker engine --------------------------------------------------------------------------------

def remove_repository(client, repository: str) -> None:
    for image in client.images.list(name=repository):
        for tag in image.tags:
            if tag.rsplit(":", 1)[0] == repository:
                client.images.remove(tag, force=True)


@pytest.mark.docker
def test_the_plan_agrees_with_the_builder_on_the_real_project(docker_client, toy_bundle, toy_image):
    builder = ImageBuilder(client=docker_client)
    result = plan_changed_since(builder, [toy_bundle], "HEAD")
    decision = result.bundles[0][1]
    assert decision.tag == toy_image.tag and decision.new_hash == toy_image.input_hash
    assert result.base.tag == builder.base_image().tag


@pytest.mark.docker
def test_cli_changed_since_builds_exactly_the_changed_bundle(tmp_path, docker_client, toy_image, tiny_image):
    probe_id = f"ci_probe_{secrets.token_hex(4)}"
    # the probe is built FROM a tiny image, not the 590 MB base: a layer committed on the base costs
    # over a minute on a loaded fuse-overlayfs engine. Its input hash still covers the base.
    repo = make_repo(tmp_path / "project", probe_id, with_code=True, parent=tiny_image.tag)
    env = {**os.environ, "PYTHONPATH": str(repo)}   # `python -m evaluator` there is that copy's ctxeval

    def ctxeval_build(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "evaluator", "build", *args], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return proc

    repository = f"ctxeval/bundle-{probe_id}"
    try:
        touch(repo / "README.md")
        touch(repo / "bundles" / probe_id / "README.md")
        commit_all(repo, "docs only")
        docs = ctxeval_build("--changed-since", "HEAD~1")
        assert "nothing changed since HEAD~1: no image to build" in docs.stderr, docs.stderr
        assert "(built)" not in docs.stderr and "(cached)" not in docs.stderr
        assert f"skip   bundle {repository}:" in docs.stderr and "skip   bundle ctxeval/bundle-toy:" in docs.stderr
        assert docker_client.images.list(name=repository) == []

        touch(repo / "bundles" / probe_id / "tools" / "train_and_evaluate.py")
        touch(repo / "bundles" / "toy" / "tools" / "train_and_evaluate.py")   # not a toy image input
        commit_all(repo, "tools")
        tools = ctxeval_build("--changed-since", "HEAD~1")
        built = re.findall(r"^bundle (\S+) \(built\): image inputs changed since HEAD~1", tools.stderr, re.M)
        assert len(built) == 1 and built[0].startswith(repository + ":"), tools.stderr
        assert f"skip   bundle {toy_image.tag}: input hash unchanged" in tools.stderr
        assert "skip   base ctxeval/base:" in tools.stderr
        assert [line for line in tools.stderr.splitlines() if "(built)" in line or "(cached)" in line] == \
            [line for line in tools.stderr.splitlines() if line.startswith(f"bundle {repository}:")]
        image = docker_client.images.get(built[0])
        assert image.labels[LABEL_INPUT_HASH].startswith(built[0].rsplit(":", 1)[1])
        assert b"touched by a test" in _file_in_image(docker_client, built[0],
                                                      "/opt/probe/tools/train_and_evaluate.py")
    finally:
        remove_repository(docker_client, repository)


def _file_in_image(client, image: str, path: str) -> bytes:
    container = client.containers.create(image, command=["true"])
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            return tar.extractfile(tar.getmembers()[0]).read()
    finally:
        container.remove(force=True)


@pytest.fixture
def tiny_image(docker_client):
    """A one-file image (a few bytes) made with `docker import`: no registry needed."""
    token = secrets.token_hex(8)
    data = f"tiny base {token}\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("etc/tiny-base")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    repository = "ctxeval-test/tiny-base"
    docker_client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=token)
    yield ImageRef(f"{repository}:{token}", hashlib.sha256(data).hexdigest(), built=False)
    remove_repository(docker_client, repository)


@pytest.fixture
def tiny_base(tiny_image, monkeypatch):
    """The tiny image standing in for the 590 MB base, so a push moves kilobytes: ImageBuilder's
    base_image() returns it and the probe bundle is built FROM it."""
    monkeypatch.setattr(ImageBuilder, "base_image", lambda self: tiny_image)
    return tiny_image


@pytest.fixture
def probe_bundle(tmp_path, docker_client):
    probe_id = f"push_probe_{secrets.token_hex(4)}"
    probe = make_probe(tmp_path, probe_id)
    yield probe
    remove_repository(docker_client, f"ctxeval/bundle-{probe_id}")


@pytest.mark.docker
def test_cli_push_sends_every_image_to_the_registry(docker_client, tiny_base, probe_bundle):
    bundle_id = probe_bundle.name
    with FakeRegistry() as registry:
        try:
            result = CliRunner().invoke(app, ["build", str(probe_bundle), "--push", registry.host])
            assert result.exit_code == 0, result.output
            pushed = dict(re.findall(r"^pushed (\S+) (sha256:[0-9a-f]{64})$", result.stdout, re.M))
            bundle_tag = next(t for t in pushed if t.startswith(f"{registry.host}/ctxeval/bundle-{bundle_id}:"))
            base_tag = f"{registry.host}/{tiny_base.tag}"
            assert set(pushed) == {base_tag, bundle_tag}, result.stdout
            local_bundle = bundle_tag.split("/", 1)[1]
            for remote, local in ((base_tag, tiny_base.tag), (bundle_tag, local_bundle)):
                name, tag = remote.split("/", 1)[1].rsplit(":", 1)
                top = registry.manifest(name, tag)
                assert top is not None, f"the registry has no manifest for {remote}"
                assert top.digest == pushed[remote] == sha256_digest(top.body)
                assert registry.manifest(name, top.digest) is top
                # an engine with the containerd image store may push an index over the image manifest
                manifest = registry.manifest(name, top.child_digests[0]) if top.is_index else top
                doc = manifest.document
                image = docker_client.images.get(local)
                # the config blob is the image itself (its id, with the classic image store), and
                # there is one layer per local layer
                assert image.id in (doc["config"]["digest"], manifest.digest, top.digest)
                assert len(doc["layers"]) == len(image.attrs["RootFS"]["Layers"])
                for blob in [doc["config"]] + doc["layers"]:
                    stored = registry.blob(blob["digest"])
                    assert stored is not None, f"{remote}: blob {blob['digest']} never arrived"
                    assert sha256_digest(stored) == blob["digest"] and len(stored) == blob["size"]
                # the remote tag is kept locally, as `docker push` keeps it
                assert docker_client.images.get(remote).id == image.id
            assert registry.state.digest_mismatches == []
            assert sum(len(b) for b in registry.state.blobs.values()) < 1_000_000   # a SMALL push
        finally:
            remove_repository(docker_client, f"{registry.host}/{tiny_base.tag.rsplit(':', 1)[0]}")
            remove_repository(docker_client, f"{registry.host}/ctxeval/bundle-{bundle_id}")


@pytest.mark.docker
def test_cli_push_to_a_failing_registry_fails_naming_it(docker_client, tiny_base, probe_bundle):
    # every manifest upload answers 500 (a failed layer upload would be retried for 50 s first)
    with FakeRegistry(fail_status=500, fail_paths=r"/manifests/") as registry:
        try:
            result = CliRunner().invoke(app, ["build", str(probe_bundle), "--push", registry.host])
            assert result.exit_code != 0, result.output
            assert f"to registry {registry.host} failed" in result.stderr, result.stderr
            assert "500" in result.stderr and "Traceback" not in result.output
            assert "pushed " not in result.stdout
            assert any(method == "PUT" and "/manifests/" in path for method, path in registry.requests)
        finally:
            remove_repository(docker_client, f"{registry.host}/{tiny_base.tag.rsplit(':', 1)[0]}")
            remove_repository(docker_client, f"{registry.host}/ctxeval/bundle-{probe_bundle.name}")
