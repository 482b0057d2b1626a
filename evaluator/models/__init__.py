"""Models the agent talks to, created from a spec `<provider>:<name>` by create_model.

* `scripted:<name>` — deterministic offline stand-ins (scripted.py)
* `openai:<model>` — Chat Completions with tool calls; any OpenAI-compatible server via base_url
* `anthropic:<model>` — the Messages API with tool use
* `replay:<cassette.jsonl>` — replays recorded replies (replay.py); `record=<path>` records any model

Providers (registry.py): each is a `Model` subclass that declares the options it takes, whether
it takes a base URL and how its name part is written; MODEL_PROVIDERS maps the names above to
them. A new provider is one module plus one line in MODEL_PROVIDERS; outside the tree,
`register_model_provider("mine", "mypkg.models:MyModel")` makes `mine:<name>` work, and
`mypkg.models:MyModel:<name>` works unregistered.

The provider modules (and the SDKs) are imported only when such a model is created, so importing
this package stays fast. Keys, base URLs, retries, timeouts, the output cap and the concurrency limit:
settings.py; how a deadline bounds a call: retries.py.
"""
from __future__ import annotations

from .base import Model, ModelCallCancelled, ModelError, ModelResponse, ModelSpec, ToolSchema
from .registry import MODEL_PROVIDERS, create_model, model_provider_names, register_model_provider

__all__ = ["MODEL_PROVIDERS", "Model", "ModelCallCancelled", "ModelError", "ModelResponse", "ModelSpec", "ToolSchema",
           "create_model", "model_provider_names", "register_model_provider"]
