"""The sandbox provider registry: names and import paths, typed options, capability flags, and an
out-of-tree provider that runs a real episode (local, no Docker needed)."""
from __future__ import annotations

import importlib
import json
import sys

import pytest

from evaluator.agents.fixed import OracleAgent
from evaluator.bundles.data import prepare_data
from evaluator.episode.runner import EpisodeOptions, run_episode
from evaluator.errors import CtxevalError
from evaluator.sandbox import registry
from evaluator.sandbox import (SandboxSpec, create_sandbox, options_for, options_from_mapping, provider,
                               provider_names, register_provider, resolve_backend)
from evaluator.sandbox.docker import DockerOptions, DockerSandbox
from evaluator.sandbox.local import LocalOptions, LocalSandbox

try:
    from conftest import SMALL_LIMITS
except ImportError:  # tests/ as a package
    from tests.conftest import SMALL_LIMITS

PROVIDER_MODULE = "ctxeval_test_recording_provider"
PROVIDER_PATH = f"{PROVIDER_MODULE}:RecordingSandbox"
PROVIDER_SOURCE = '''
"""A provider of its own: the local one, recording every call the evaluator makes on it."""
from evaluator.sandbox.local import LocalSandbox

CALLS = []


class RecordingSandbox(LocalSandbox):
    backend = "recording"

    def _record(self, name):
        CALLS.append((name, self.spec.role))

    def start(self):
        self._record("start")
        super().start()

    def exec(self, command, **kwargs):
        self._record("exec")
        return super().exec(command, **kwargs)

    def reset(self, starter_dir):
        self._record("reset")
        super().reset(starter_dir)

    def copy_out(self, dest, *args, **kwargs):
        self._record("copy_out")
        return super().copy_out(dest, *args, **kwargs)

    def stop(self):
        self._record("stop")
        super().stop()


class NotASandbox:
    pass
'''


@pytest.fixture
def recording_provider(tmp_path, monkeypatch):
    """The provider module written to tmp_path and importable; its CALLS list."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / f"{PROVIDER_MODULE}.py").write_text(PROVIDER_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, PROVIDER_MODULE, raising=False)
    monkeypatch.setattr(registry, "_TABLE", registry._TABLE.copy())  # registrations end with the test
    return importlib.import_module(PROVIDER_MODULE).CALLS


def spec() -> SandboxSpec:
    return SandboxSpec(image=None, limits=SMALL_LIMITS, labels={"ctxeval.run": "pytest-registry"})


# -- names ------------------------------------------------------------------------------------------

def test_the_built_in_providers_are_found_by_name():
    assert provider("docker") is DockerSandbox and provider("local") is LocalSandbox
    assert set(provider_names()) >= {"docker", "local"}


def test_an_unknown_backend_lists_the_registered_ones():
    with pytest.raises(CtxevalError, match="unknown sandbox backend 'podman'") as caught:
        resolve_backend("podman")
    assert "docker" in str(caught.value) and "local" in str(caught.value)
    assert "package.module:Class" in str(caught.value)


@pytest.mark.parametrize("path, says", [
    ("no_such_module_anywhere:Sandbox", "cannot be imported"),
    ("evaluator.sandbox.local:NoSuchClass", "cannot be imported"),
    ("evaluator.sandbox.base:SandboxSpec", "not a subclass"),
    ("evaluator.sandbox.base:Sandbox", "does not implement"),
])
def test_an_import_path_that_is_no_provider_says_what_failed(path, says):
    with pytest.raises(CtxevalError, match=says) as caught:
        provider(path)
    assert path in str(caught.value)


def test_register_provider_gives_an_import_path_a_name(recording_provider):
    register_provider("recording", PROVIDER_PATH)
    assert provider("recording").backend == "recording"
    assert "recording" in provider_names()
    assert resolve_backend("recording") == "recording"
    with pytest.raises(CtxevalError, match="plain word"):
        register_provider("auto", PROVIDER_PATH)
    with pytest.raises(CtxevalError, match="package.module:Class"):
        register_provider("other", "no_colon_here")


# -- options ------------------------------------------------------------------------------------------

def test_an_unknown_option_names_it_the_provider_and_the_accepted_ones():
    with pytest.raises(CtxevalError) as caught:
        create_sandbox("docker", spec(), network="host")
    message = str(caught.value)
    assert "'network'" in message and "docker" in message and "runtime" in message and "client" in message
    with pytest.raises(CtxevalError, match="local.*takes no option 'memory'.*none"):
        options_from_mapping(LocalSandbox, {"memory": 1})


def test_options_are_typed_per_provider():
    assert options_for("docker", {"runtime": "runsc"}) == DockerOptions(runtime="runsc")
    assert options_for("docker", DockerOptions(runtime="runc"), runtime="runsc").runtime == "runsc"
    assert options_for("local") == LocalOptions()
    assert options_for("local", runtime=None) == LocalOptions()  # a keyword given as None is not given
    with pytest.raises(CtxevalError, match="DockerOptions are not options of the local"):
        options_for("local", DockerOptions())


def test_a_runtime_for_a_provider_without_one_is_a_clear_error():
    with pytest.raises(CtxevalError, match="local sandbox backend runs no container runtime.*runsc"):
        options_for("local", runtime="runsc")
    sandbox = create_sandbox("local", spec())
    assert isinstance(sandbox.options, LocalOptions)


# -- capabilities -------------------------------------------------------------------------------------

def test_capability_flags_of_the_built_in_providers():
    assert (DockerSandbox.isolated, DockerSandbox.needs_image, DockerSandbox.supports_runtime) == (True, True, True)
    assert (LocalSandbox.isolated, LocalSandbox.needs_image, LocalSandbox.supports_runtime) == (False, False, False)
    assert LocalSandbox.available() is True
    assert DockerSandbox.options_type is DockerOptions and LocalSandbox.options_type is LocalOptions
    assert LocalSandbox.leftovers() == [] and LocalSandbox.cleanup_leftovers("any").containers == []


def test_the_contract_has_events_alive_and_describe():
    sandbox = create_sandbox("local", spec())
    assert sandbox.events == [] and sandbox.alive() is False
    with sandbox:
        assert sandbox.alive() is True
        assert sandbox.describe()["backend"] == "local"
    assert sandbox.alive() is False


# -- an out-of-tree provider runs an episode -------------------------------------------------------

def test_an_out_of_tree_provider_runs_a_graded_episode_by_import_path(recording_provider, toy_bundle,
                                                                      tmp_path):
    assert resolve_backend(PROVIDER_PATH) == PROVIDER_PATH
    options = EpisodeOptions(run_id="pytest-registry", episode_id="recording-oracle", seed=0,
                             backend=PROVIDER_PATH, episode_dir=tmp_path / "episode")
    result = run_episode(toy_bundle, OracleAgent(), options, prepare_data(toy_bundle))
    assert result["status"] == "completed", result["error"]
    assert result["grade"] is not None and result["success"] is True
    # a provider that is not reusable serves one episode per sandbox
    assert result["sandbox"] == {"backend": "recording", "isolated": False, "reused": False, "episodes_before": 0,
                                 "retired": "no_reuse"}
    calls = set(recording_provider)
    assert {("start", "agent"), ("reset", "agent"), ("exec", "agent"), ("copy_out", "agent"),
            ("stop", "agent"), ("start", "grader"), ("exec", "grader"), ("stop", "grader")} <= calls


def test_ctxeval_run_takes_a_provider_by_import_path(recording_provider, tmp_path):
    from typer.testing import CliRunner

    from evaluator.cli import app
    outcome = CliRunner().invoke(app, ["run", "toy", "--agent", "oracle", "--backend", PROVIDER_PATH,
                                       "--run-id", "recording"], env={"CTXEVAL_RUNS_DIR": str(tmp_path)})
    assert outcome.exit_code == 0, outcome.output
    [result_file] = (tmp_path / "recording" / "episodes").glob("*/result.json")
    result = json.loads(result_file.read_text())
    assert result["status"] == "completed" and result["sandbox"]["backend"] == "recording"
    assert json.loads((tmp_path / "recording" / "run.json").read_text())["backend"] == PROVIDER_PATH
    assert ("start", "grader") in recording_provider


def test_a_runtime_on_local_is_refused_before_any_episode(tmp_path, toy_bundle):
    from evaluator.runs import RunPlan, execute
    plan = RunPlan(bundle=toy_bundle, agent=OracleAgent(), seeds=[0], backend="local",
                   root=tmp_path, run_id="runtime-on-local", runtime="runsc")
    with pytest.raises(CtxevalError, match="runs no container runtime"):
        execute(plan, None, None)
    assert not (tmp_path / "runtime-on-local" / "episodes").exists()

