"""The scikit-learn bundles in Docker: `ctxeval check` passes on each bundle and its long variant,
and the bundle library reaches the agent's container read-only and root's (the agent can read and
import it, never change what its tool or the grader run)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from evaluator.bundles import load_bundle
from evaluator.bundles.bundle_lib import BUNDLE_LIB_MOUNT
from evaluator.bundles.data import prepare_data
from evaluator.episode.limits import agent_limits
from evaluator.episode.mounts import bundle_scratch
from evaluator.paths import BUNDLES_DIR, PROJECT_ROOT
from evaluator.sandbox import SandboxSpec, create_sandbox

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CHECKED = ("digits", "digits@long", "diabetes", "diabetes@long", "breast_cancer", "breast_cancer@long")


@pytest.mark.parametrize("ref", CHECKED)
def test_check_passes(ref, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "evaluator", "check", f"bundles/{ref}", "--backend", "docker",
                           "--runs-dir", str(tmp_path)], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          env={**os.environ, "CTXEVAL_RUNS_DIR": str(tmp_path)}, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS oracle passes" in proc.stderr and "PASS noop fails" in proc.stderr
    assert f"bundle {ref} is sound" in proc.stdout
    oracle = next(json.loads(p.read_text()) for p in tmp_path.rglob("result.json") if "oracle" in str(p))
    assert oracle["bundle"]["id"] == ref and oracle["success"] and oracle["grade"]["valid"]


def test_the_library_is_read_only_and_roots_in_the_agents_container(docker_client):
    from evaluator.images import ImageBuilder
    bundle = load_bundle(BUNDLES_DIR / "diabetes")
    image = ImageBuilder(client=docker_client).bundle_image(bundle).tag
    prepared = prepare_data(bundle)
    spec = SandboxSpec(image=image, limits=agent_limits(bundle, None), labels={}, tools_dir=bundle.tools_dir,
                       data_dir=prepared.public, scratch=bundle_scratch(bundle))
    sandbox = create_sandbox("docker", spec)
    sandbox.start()
    try:
        listed = sandbox.exec('stat -c "%U %a" "$CTXEVAL_BUNDLE_LIB/ctxeval_tabular/tool.py"; echo "$CTXEVAL_BUNDLE_LIB"')
        assert listed.stdout.split() == ["root", "644", BUNDLE_LIB_MOUNT], listed.stdout + listed.stderr
        for attempt in ('echo x >> "$CTXEVAL_BUNDLE_LIB/ctxeval_tabular/tool.py"',
                        'touch "$CTXEVAL_BUNDLE_LIB/ctxeval_tabular/sitecustomize.py"'):
            assert sandbox.exec(attempt).exit_code != 0, attempt
        used = sandbox.exec('echo \'{"config": {"model": "ridge"}}\' | ' + bundle.tool("train_and_evaluate").command)
        assert used.exit_code == 0 and json.loads(used.stdout)["cv_rmse"] > 0, used.stderr
    finally:
        sandbox.stop()
