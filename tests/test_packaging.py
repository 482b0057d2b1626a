"""ctxeval installed from its wheel (not the checkout) finds its schemas and presets: from another
folder it validates a bundle, lists the presets and runs a local episode.

The wheel is built from a copy of the sources with the test venv's setuptools (no build isolation)
and installed with --no-deps --no-index into a fresh venv; that venv sees the test venv's
third-party packages through a .pth file added after the install, so nothing is downloaded. A bare
path in a .pth file does not run the .pth files it points at: the checkout's editable-install hook
stays out, and `evaluator` comes from the fresh venv.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from evaluator.jsonschemas import validate
from evaluator.paths import BUNDLES_DIR, PROJECT_ROOT
from policies.config import PRESETS_DIR

pytestmark = pytest.mark.slow

SOURCES = ["pyproject.toml", "README.md", "LICENSE", "evaluator", "policies"]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def run(command: list[str | Path], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    return proc


def build_wheel(source: Path, wheels: Path) -> Path:
    for name in SOURCES:
        if (PROJECT_ROOT / name).is_dir():
            shutil.copytree(PROJECT_ROOT / name, source / name, ignore=IGNORE)
        else:
            shutil.copy2(PROJECT_ROOT / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels,
         source], cwd=source)
    [wheel] = wheels.glob("ctxeval-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a fresh venv holding ctxeval installed from its wheel."""
    root = tmp_path_factory.mktemp("packaging")
    (root / "source").mkdir()
    wheel = build_wheel(root / "source", root / "wheels")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel], cwd=root)
    site_packages = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=root)
    (Path(site_packages.stdout.strip()) / "test_venv_packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin"


@pytest.fixture
def elsewhere(tmp_path) -> tuple[Path, dict[str, str]]:
    """A folder outside the checkout, holding a copy of the toy bundle, and the environment to run in
    (no CTXEVAL_RUNS_DIR: an installed ctxeval writes its runs under the folder it is run from)."""
    folder = tmp_path / "elsewhere"
    shutil.copytree(BUNDLES_DIR / "toy", folder / "toy", ignore=IGNORE)
    unset = ("PYTHONPATH", "VIRTUAL_ENV", "CTXEVAL_RUNS_DIR", "CTXEVAL_LEADERBOARD_DIR")
    env = {key: value for key, value in os.environ.items() if key not in unset}
    return folder, {**env, "COLUMNS": "200"}


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, elsewhere):
    folder, env = elsewhere
    proc = run([installed / "python", "-c", "import evaluator, policies; print(evaluator.__file__); "
                "print(policies.__file__)"], cwd=folder, env=env)
    venv = installed.parent.resolve()
    for line in proc.stdout.split():
        assert Path(line).resolve().is_relative_to(venv), line
    assert not Path(proc.stdout.split()[0]).resolve().is_relative_to(PROJECT_ROOT)


def test_an_installed_ctxeval_validates_lists_presets_and_runs_an_episode(installed, elsewhere):
    folder, env = elsewhere
    ctxeval = installed / "ctxeval"
    run([ctxeval, "validate", "toy"], cwd=folder, env=env)

    listed = run([ctxeval, "policies"], cwd=folder, env=env).stdout
    presets = sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))
    assert presets and all(name in listed for name in presets), listed

    run([ctxeval, "run", "toy", "--backend", "local", "--run-id", "installed"], cwd=folder, env=env)
    [result_path] = (folder / "runs" / "installed" / "episodes").glob("*/result.json")
    result = json.loads(result_path.read_text())
    validate(result, "episode_result", result_path)
    assert result["status"] == "completed" and result["grade"] is not None


def test_an_installed_ctxeval_ships_the_bundle_library(installed, tmp_path):
    """A bundle that imports ctxeval_tabular runs from the wheel: the library is package data."""
    folder = tmp_path / "elsewhere"
    shutil.copytree(BUNDLES_DIR / "diabetes", folder / "diabetes", ignore=IGNORE)
    unset = ("PYTHONPATH", "VIRTUAL_ENV", "CTXEVAL_RUNS_DIR", "CTXEVAL_LEADERBOARD_DIR")
    env = {key: value for key, value in os.environ.items() if key not in unset}
    run([installed / "ctxeval", "run", "diabetes", "--backend", "local", "--run-id", "lib"], cwd=folder, env=env)
    [result_path] = (folder / "runs" / "lib" / "episodes").glob("*/result.json")
    result = json.loads(result_path.read_text())
    assert result["success"] and result["grade"]["metric"] == "rmse", result["grade"]
