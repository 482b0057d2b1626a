"""The model provider registry: a provider defined here, registered by name or given by import
path, is created through create_model like the built-in ones; bad specs and options say what is known."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evaluator.errors import CtxevalError
from evaluator.models import MODEL_PROVIDERS, Model, ModelResponse, create_model, register_model_provider
from evaluator.models import registry
from evaluator.models.base import Usage
from evaluator.models.replay import RecordingModel
from evaluator.models.scripted import HillClimb
from policies.base import Message

ECHO_PATH = f"{__name__}:EchoModel"


class EchoModel(Model):
    """A provider of its own: says its greeting and the last message back."""

    options = ("greeting",)
    takes_base_url = True
    spec_name = "<words>"

    def __init__(self, words: str, base_url: str | None = None, greeting: str = "hello"):
        self.words, self.base_url, self.greeting = words, base_url, greeting
        self.name = f"echo:{words}"

    def complete(self, messages, tools=None, response_schema=None, *, deadline=None) -> ModelResponse:
        return ModelResponse(text=f"{self.greeting} {self.words}: {messages[-1].content}", usage=Usage(1, 1))


class NotAModel:
    pass


class Unfinished(Model):
    """A provider that forgot `complete`."""


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    """Registrations made by a test end with it."""
    monkeypatch.setattr(registry, "_TABLE", registry._TABLE.copy())


def test_a_registered_provider_is_created_by_name_with_its_options(tmp_path):
    register_model_provider("echo", ECHO_PATH)
    model = create_model("echo:llama3.1:8b", base_url="http://127.0.0.1:9", greeting="hi", timeout=None)
    assert isinstance(model, EchoModel) and model.words == "llama3.1:8b"  # the name part may hold colons
    assert (model.base_url, model.greeting) == ("http://127.0.0.1:9", "hi")
    assert model.complete([Message("user", "ping")]).text == "hi llama3.1:8b: ping"
    assert "echo" in registry.model_provider_names()
    recorded = create_model("echo:x", record=tmp_path / "echo.jsonl")
    assert isinstance(recorded, RecordingModel) and isinstance(recorded.inner, EchoModel)
    recorded.complete([Message("user", "ping")])
    replayed = create_model(f"replay:{tmp_path / 'echo.jsonl'}")
    assert replayed.complete([Message("user", "ping")]).text == "hello x: ping"


def test_an_unregistered_provider_is_created_by_import_path():
    model = create_model(f"{ECHO_PATH}:some words", greeting="hey")
    assert isinstance(model, EchoModel) and (model.words, model.greeting) == ("some words", "hey")


def test_a_provider_without_base_url_is_not_given_one():
    assert isinstance(create_model("scripted:hill_climb", base_url="http://127.0.0.1:9"), HillClimb)


def test_an_unknown_provider_names_it_and_the_known_ones():
    with pytest.raises(CtxevalError, match="unknown model 'gemini:pro'") as caught:
        create_model("gemini:pro")
    for name in MODEL_PROVIDERS:
        assert name in str(caught.value)
    register_model_provider("echo", ECHO_PATH)
    with pytest.raises(CtxevalError, match="echo"):
        create_model("gemini:pro")


def test_an_unknown_option_names_it_and_the_known_ones():
    register_model_provider("echo", ECHO_PATH)
    with pytest.raises(CtxevalError, match="echo models take no option colour; known: greeting"):
        create_model("echo:x", colour="blue")
    with pytest.raises(CtxevalError, match="replay models take no option temperature; known: strict"):
        create_model("replay:cassette.jsonl", temperature=0.5)


def test_a_spec_without_a_name_says_how_to_write_one():
    register_model_provider("echo", ECHO_PATH)
    with pytest.raises(CtxevalError, match=r"model 'echo:' names nothing: use echo:<words>"):
        create_model("echo:")
    with pytest.raises(CtxevalError, match=r"use replay:<path/to/cassette.jsonl>"):
        create_model("replay:")


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_zz:Thing:x", "cannot be imported: ModuleNotFoundError"),
    (f"{__name__}:Missing:x", "cannot be imported: AttributeError"),
    (f"{__name__}:NotAModel:x", "is not a subclass of evaluator.models.Model"),
    (f"{__name__}:Unfinished:x", "does not implement: complete"),
])
def test_a_bad_provider_class_is_a_clear_error(spec, message):
    with pytest.raises(CtxevalError, match=message):
        create_model(spec)


@pytest.mark.parametrize("name, path", [("", ECHO_PATH), ("a:b", ECHO_PATH), ("echo", "no_colon_here")])
def test_register_refuses_bad_names_and_paths(name, path):
    with pytest.raises(CtxevalError):
        register_model_provider(name, path)


def test_registering_again_replaces_the_provider():
    register_model_provider("echo", ECHO_PATH)
    assert isinstance(create_model("echo:x"), EchoModel)
    register_model_provider("echo", "evaluator.models.scripted:ScriptedModel")
    assert isinstance(create_model("echo:react"), Model) and create_model("echo:react").name == "scripted:react"


def test_importing_the_package_imports_no_provider_module():
    modules: Any = ("openai", "anthropic", "evaluator.models.openai_client", "evaluator.models.anthropic_client",
                    "evaluator.models.replay", "evaluator.models.scripted")
    code = f"import sys, evaluator.models; print([n for n in {modules!r} if n in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
