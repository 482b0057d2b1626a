"""The executor seam (issue 15) without a multi-node cluster: what travels to and from a node,
spans made elsewhere, the registry and its errors, and the Ray executor on a Ray started for the
run (real Ray, one node)."""
from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from evaluator.bundles import load_bundle
from evaluator.bundles.data import prepare_data
from evaluator.errors import CtxevalError, ValidationFailed
from evaluator.executors import create_executor
from evaluator.executors.shipping import install_folder, land_bundle, pack_folder, ship_bundle
from evaluator.matrix import RunMatrix
from evaluator.paths import BUNDLES_DIR
from evaluator.runs import RunSettings, execute_jobs, matrix_jobs, run_record
from evaluator.tracing import start_run_tracing
from evaluator.tracing.jsonl import read_spans
from evaluator.tracing.transfer import parent_ids, remote_parent, span_from_record, span_to_record


def test_an_episode_folder_travels_whole_and_is_installed_at_once(tmp_path):
    source = tmp_path / "made" / "ep"
    (source / "workspace" / "sub").mkdir(parents=True)
    (source / "result.json").write_text('{"episode_id": "ep"}')
    (source / "workspace" / "sub" / "out.json").write_text("[1, 2]")
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "x.pyc").write_bytes(b"cache")
    destination = tmp_path / "run" / "episodes" / "ep"
    destination.mkdir(parents=True)
    (destination / "stale.txt").write_text("from an older attempt")
    install_folder(pack_folder(source), destination)
    assert sorted(str(p.relative_to(destination)) for p in destination.rglob("*")) == [
        "result.json", "workspace", "workspace/sub", "workspace/sub/out.json"]
    assert [p.name for p in destination.parent.iterdir()] == ["ep"]  # no staging folder left


def test_an_archive_reaching_outside_is_refused_and_leaves_nothing(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"escaped"
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    destination = tmp_path / "run" / "episodes" / "ep"
    with pytest.raises(tarfile.TarError):
        install_folder(buffer.getvalue(), destination)
    assert not destination.exists() and not (tmp_path / "escaped.txt").exists()
    assert list(destination.parent.iterdir()) == []


def test_a_shipped_bundle_lands_once_per_digest_and_loads_with_its_data(tmp_path):
    bundle = load_bundle(f"{BUNDLES_DIR / 'toy'}@long")
    prepared = prepare_data(bundle)
    shipment = ship_bundle(bundle, prepared)
    landed, data = land_bundle(shipment, tmp_path / "cache")
    assert landed.id == bundle.id and landed.variant == "long" and landed.root != bundle.root
    assert sorted(p.name for p in data.public.iterdir()) == sorted(p.name for p in prepared.public.iterdir())
    assert (data.private / next(iter(p.name for p in prepared.private.iterdir()))).is_file()
    again, _ = land_bundle(shipment, tmp_path / "cache")
    assert again.root == landed.root and len(list((tmp_path / "cache").iterdir())) == 1


def test_spans_made_elsewhere_come_back_as_the_run_s_own(tmp_path):
    tracing = start_run_tracing(tmp_path)
    with tracing.tracing.run("r") as run_span:
        ids = parent_ids(__import__("opentelemetry").trace.set_span_in_context(run_span))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("ctxeval").start_as_current_span("episode", context=remote_parent(ids),
                                                              attributes={"ctxeval.node": "n1", "k": 3}) as span:
        span.add_event("graded", {"score": 0.5})
        span.set_status(Status(StatusCode.ERROR, "boom"))
    records = [span_to_record(s) for s in exporter.get_finished_spans()]
    assert span_from_record(json.loads(json.dumps(records[0])), provider.resource).name == "episode"
    tracing.accept(json.loads(json.dumps(records)))
    tracing.shutdown()
    spans = {s["name"]: s for s in read_spans(tracing.jsonl_path)}
    assert spans["episode"]["parent_id"] == spans["run"]["span_id"]
    assert spans["episode"]["trace_id"] == spans["run"]["trace_id"]
    assert spans["episode"]["attributes"] == {"ctxeval.node": "n1", "k": 3}
    assert spans["episode"]["status"] == "ERROR" and spans["episode"]["status_message"] == "boom"


def test_unknown_executors_and_a_missing_ray_get_clear_errors(monkeypatch, tmp_path):
    with pytest.raises(CtxevalError, match="unknown executor 'slurm'"):
        RunSettings(backend="local", executor="slurm")
    with pytest.raises(CtxevalError, match="unknown executor"):
        create_executor("slurm")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(CtxevalError, match=r"pip install 'ctxeval\[ray\]'"):
        create_executor("ray").start()
    run_file = tmp_path / "run.yaml"
    run_file.write_text("bundles: [toy]\nagent: noop\nexecutor: slurm\n")
    with pytest.raises(ValidationFailed) as failed:
        RunMatrix.from_file(run_file)
    assert any("$.executor" in str(v) and str(run_file) in str(v) for v in failed.value.violations)
    run_file.write_text("bundles: [toy]\nagent: noop\nexecutor: ray\nray_address: 10.0.0.1:6379\n")
    assert RunMatrix.from_file(run_file).options == {"executor": "ray", "ray_address": "10.0.0.1:6379"}


def _noop_sweep(root: Path, run_id: str, executor: str) -> RunSettings:
    bundle = load_bundle(BUNDLES_DIR / "toy")
    matrix = RunMatrix.from_options([str(BUNDLES_DIR / "toy")], agent="noop", seeds=[0, 1, 2])
    jobs = matrix_jobs(matrix, {str(BUNDLES_DIR / "toy"): bundle}, {})
    settings = RunSettings(backend="local", run_id=run_id, root=root, max_parallel=2, executor=executor)
    execute_jobs(settings, run_record(settings, matrix=matrix.as_record()), jobs)
    return settings


def test_a_ray_started_for_the_run_gives_the_local_executor_s_summary(tmp_path):
    import ray
    on_ray = _noop_sweep(tmp_path, "on-ray", "ray")
    assert not ray.is_initialized()  # the Ray it started is gone with the run
    local = _noop_sweep(tmp_path, "on-threads", "local")
    assert (on_ray.run_dir / "summary.json").read_text() == (local.run_dir / "summary.json").read_text()
    record = json.loads((on_ray.run_dir / "run.json").read_text())
    assert record["executor"] == "ray" and record["execution"]["resource"] == "ctxeval_sandbox"
    assert [n["resources"]["ctxeval_sandbox"] for n in record["execution"]["nodes"]] == [2.0]
    nodes = {s["attributes"].get("ctxeval.node") for s in read_spans(on_ray.run_dir / "traces.jsonl")
             if s["name"] == "episode"}
    assert nodes == {record["execution"]["nodes"][0]["node_id"]}
    assert json.loads((local.run_dir / "run.json").read_text())["execution"]["name"] == "local"


@pytest.mark.docker
def test_with_an_image_registry_a_node_pulls_the_image_instead_of_building_it(tmp_path, docker_client):
    import secrets
    import shutil

    from evaluator.images import ImageBuilder
    from evaluator.images.push import push_image
    from fake_registry import FakeRegistry
    copy = tmp_path / "bundles" / f"ray_pull_{secrets.token_hex(3)}"
    shutil.copytree(BUNDLES_DIR / "toy", copy, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = copy / "bundle.yaml"
    manifest.write_text(manifest.read_text().replace("id: toy\n", f"id: {copy.name}\n", 1))
    bundle = load_bundle(copy)
    ref = ImageBuilder().bundle_image(bundle)  # an image no other test uses
    with FakeRegistry() as registry:
        try:
            push_image(docker_client, ref.tag, registry.host)
            for tag in (ref.tag, f"{registry.host}/{ref.tag}"):
                docker_client.images.remove(tag)  # the node holds it no more: it must pull it
            matrix = RunMatrix.from_options([str(copy)], agent="noop", seeds=[0])
            jobs = matrix_jobs(matrix, {str(copy): bundle}, {str(copy): (ref.tag, ref.input_hash)})
            settings = RunSettings(backend="docker", run_id="pulled", root=tmp_path, executor="ray",
                                   image_registry=registry.host)
            [result] = execute_jobs(settings, run_record(settings, matrix=matrix.as_record()), jobs)
            assert result["status"] == "completed" and result["bundle"]["image"] == ref.tag
            pulled = docker_client.images.get(ref.tag)
            assert pulled.labels["ctxeval.input-hash"] == ref.input_hash
            name, version = ref.tag.rsplit(":", 1)
            assert registry.manifest(name, version) is not None
        finally:
            for tag in (ref.tag, f"{registry.host}/{ref.tag}"):
                try:
                    docker_client.images.remove(tag, force=True)
                except Exception:
                    pass
    with pytest.raises(CtxevalError, match="--image-registry is for --executor ray"):
        RunSettings(backend="docker", image_registry="127.0.0.1:5000")


@pytest.mark.docker
def test_a_node_that_cannot_set_up_is_an_infrastructure_error_never_a_score(tmp_path, toy_bundle, toy_image):
    matrix = RunMatrix.from_options([str(BUNDLES_DIR / "toy")], agent="noop", seeds=[0])
    images = {str(BUNDLES_DIR / "toy"): (toy_image.tag, "0" * 16)}  # a hash no node builds for this bundle
    jobs = matrix_jobs(matrix, {str(BUNDLES_DIR / "toy"): toy_bundle}, images)
    settings = RunSettings(backend="docker", run_id="bad-node", root=tmp_path, executor="ray")
    with pytest.raises(CtxevalError, match="lost by the Ray cluster 3 times") as failed:
        execute_jobs(settings, run_record(settings, matrix=matrix.as_record()), jobs)
    assert "not the driver's" in str(failed.value)
    attempts = sorted((settings.run_dir / "aborted").glob("*-attempt*.json"))
    assert [json.loads(p.read_text())["attempt"] for p in attempts] == [1, 2, 3]
    assert all(json.loads(p.read_text())["error"].startswith("NodeSetupError") for p in attempts)
    assert not (settings.run_dir / "episodes" / jobs[0].episode_id / "result.json").exists()


@pytest.mark.docker
def test_an_interrupted_ray_run_leaves_no_sandbox_and_resumes(tmp_path, toy_image, docker_client):
    import signal
    import subprocess
    import time

    from evaluator.sandbox.defaults import LABEL_RUN
    ctxeval = str(Path(sys.executable).with_name("ctxeval"))
    run = [ctxeval, "run", str(BUNDLES_DIR / "toy"), "--seeds", "3", "--max-steps", "6", "--executor", "ray",
           "--runs-dir", str(tmp_path), "--run-id", "ray-interrupted"]

    def containers() -> list:  # the low-level listing: a container removed while listed is no error
        return docker_client.api.containers(all=True, filters={"label": f"{LABEL_RUN}=ray-interrupted"})

    process = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not containers() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert containers(), "no sandbox of the run ever started"
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 130, output[-3000:]
    record = json.loads((tmp_path / "ray-interrupted" / "run.json").read_text())
    assert record["status"] == "interrupted" and record["executor"] == "ray"
    deadline = time.monotonic() + 60
    while containers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not containers()  # the cancelled task's worker took its sandbox with it
    resumed = subprocess.run([ctxeval, "run", "--resume", "ray-interrupted", "--runs-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads((tmp_path / "ray-interrupted" / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["errors"] == 0
