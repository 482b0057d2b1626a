"""Model providers by name: the built-in ones, those registered, any `package.module:Class`.

A provider is a `Model` subclass given as an import path and imported on first use (so an SDK is
imported only when its model is created). The class declares what it takes (`options`,
`takes_base_url`, `spec_name`) and `Model.from_spec` builds it; a provider with its own naming
(scripted) overrides `from_spec`. Adding one is one new module and one line in MODEL_PROVIDERS;
outside the tree, `register_model_provider("mine", "mypkg.models:MyModel")` and then `mine:<name>`,
or, unregistered, its import path before the name: `mypkg.models:MyModel:<name>`.
"""
from __future__ import annotations

from typing import Any

from ..errors import CtxevalError
from ..provider_table import ProviderTable
from .base import Model, ModelSpec

MODEL_PROVIDERS = {
    "scripted": "evaluator.models.scripted:ScriptedModel",
    "openai": "evaluator.models.openai_client:OpenAIModel",
    "anthropic": "evaluator.models.anthropic_client:AnthropicModel",
    "replay": "evaluator.models.replay:ReplayModel",
}

_TABLE = ProviderTable("model", Model, "evaluator.models.Model", MODEL_PROVIDERS)


def register_model_provider(name: str, import_path: str) -> None:
    """Give a provider class (`package.module:Class`) a short name: `name:<model name>`."""
    _TABLE.register(name, import_path)


def model_provider_names() -> tuple[str, ...]:
    """The registered provider names (import paths are accepted besides these)."""
    return _TABLE.names()


def parse_spec(spec: str) -> ModelSpec:
    """`<provider>:<name>`, or `package.module:Class:<name>` when the first part is no registered name."""
    provider, _, name = spec.partition(":")
    if not _TABLE.knows(provider) and ":" in name:
        class_name, _, name = name.partition(":")
        provider = f"{provider}:{class_name}"
    return ModelSpec(spec, provider, name)


def model_provider(spec: ModelSpec) -> type[Model]:
    """The provider class of a parsed spec: by registered name, or imported from its path."""
    cls = _TABLE.get(spec.provider)
    if cls is None:
        raise CtxevalError(f"unknown model {spec.text!r}: use <provider>:<name> with a provider of "
                           f"{', '.join(model_provider_names())} (e.g. openai:<model>, anthropic:<model>, "
                           f"replay:<cassette.jsonl> or scripted:hill_climb), or a provider class as "
                           f"package.module:Class:<name>")
    return cls


def create_model(spec: str, base_url: str | None = None, **options: Any) -> Model:
    """A model from its spec: `scripted:<name>`, `openai:<model>`, `anthropic:<model>`,
    `replay:<path>`, a registered `<provider>:<name>` or `package.module:Class:<name>`. `base_url`
    points openai/anthropic at another server; `record=<path>` wraps the model in a RecordingModel
    writing that cassette; other options (max_retries, timeout, max_concurrent, max_tokens,
    temperature, api_key, json_mode, strict) go to the provider, which names those it does not take.
    `None` options are ignored, so callers can pass their CLI values through."""
    options = {k: v for k, v in options.items() if v is not None}
    record = options.pop("record", None)
    parsed = parse_spec(spec)
    model = model_provider(parsed).from_spec(parsed, base_url, options)
    if record:
        from .replay import RecordingModel
        return RecordingModel(model, record)
    return model


__all__ = ["MODEL_PROVIDERS", "create_model", "model_provider", "model_provider_names", "parse_spec",
           "register_model_provider"]
