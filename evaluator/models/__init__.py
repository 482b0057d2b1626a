"""Models the agent talks to.

* `scripted:<name>` — deterministic offline stand-ins (scripted.py)
* `openai:<model>` — Chat Completions with tool calls; any OpenAI-compatible server via base_url
* `anthropic:<model>` — the Messages API with tool use
* `replay:<cassette.jsonl>` — replays recorded replies (replay.py); `record=<path>` records any model

The API clients (and their SDKs) are imported only when such a model is created, so importing
this package stays fast. Keys, base URLs, retries, timeouts, the output cap and the concurrency limit:
settings.py; how a deadline bounds a call: retries.py.
"""
from __future__ import annotations

from typing import Any

from ..errors import CtxevalError
from .base import Model, ModelCallCancelled, ModelError, ModelResponse, ToolSchema

API_OPTIONS = ("api_key", "max_retries", "timeout", "max_concurrent", "max_tokens", "temperature")
PROVIDER_OPTIONS = {"openai": API_OPTIONS + ("json_mode",), "anthropic": API_OPTIONS, "replay": ("strict",)}


def _check_options(provider: str, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(PROVIDER_OPTIONS.get(provider, ())))
    if unknown:
        raise CtxevalError(f"{provider} models take no option {', '.join(unknown)}; "
                           f"known: {', '.join(PROVIDER_OPTIONS.get(provider, ())) or 'none'}")


def create_model(spec: str, base_url: str | None = None, **options: Any) -> Model:
    """A model from its spec: `scripted:<name>`, `openai:<model>`, `anthropic:<model>` or
    `replay:<path>`. `base_url` points openai/anthropic at another server; `record=<path>` wraps
    the model in a RecordingModel writing that cassette; other options (max_retries, timeout,
    max_concurrent, max_tokens, temperature, api_key, json_mode, strict) go to the client. `None`
    options are ignored, so callers can pass their CLI values through."""
    options = {k: v for k, v in options.items() if v is not None}
    record = options.pop("record", None)
    model = _create(spec, base_url, options)
    if record:
        from .replay import RecordingModel
        return RecordingModel(model, record)
    return model


def _create(spec: str, base_url: str | None, options: dict[str, Any]) -> Model:
    provider, _, name = spec.partition(":")
    if provider == "scripted":
        from .scripted import SCRIPTED_MODELS
        if name not in SCRIPTED_MODELS:
            raise CtxevalError(f"unknown scripted model {name!r}; known: {', '.join(sorted(SCRIPTED_MODELS))}")
        return SCRIPTED_MODELS[name]()
    if provider in ("openai", "anthropic", "replay"):
        if not name:
            what = "<path/to/cassette.jsonl>" if provider == "replay" else "<model>"
            raise CtxevalError(f"model {spec!r} names nothing: use {provider}:{what}")
        _check_options(provider, options)
    if provider == "openai":
        from .openai_client import OpenAIModel
        return OpenAIModel(name, base_url=base_url, **options)
    if provider == "anthropic":
        from .anthropic_client import AnthropicModel
        return AnthropicModel(name, base_url=base_url, **options)
    if provider == "replay":
        from .replay import ReplayModel
        return ReplayModel(name, **options)
    raise CtxevalError(f"unknown model {spec!r}: use openai:<model>, anthropic:<model>, replay:<cassette.jsonl> "
                       f"or scripted:<name> (e.g. scripted:hill_climb)")


__all__ = ["Model", "ModelCallCancelled", "ModelError", "ModelResponse", "ToolSchema", "create_model"]
