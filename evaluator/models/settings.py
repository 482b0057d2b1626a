"""Settings and plumbing shared by the real API clients (`openai:`, `anthropic:`).

Keys, base URLs, retries, the timeout, the concurrency limit and the output cap are read through
evaluator/settings.py (an explicit argument, else the environment, else a `.env` file; the table
of variables and defaults is there and in the README).

Keys are held only by the SDK client objects: they are never printed, never part of
`describe()`, and they are scrubbed from every `ModelError` message.

The output cap is always sent (evaluator/settings.py says why 4096 by default): as `max_tokens` to
Anthropic and to OpenAI-compatible servers, as `max_completion_tokens` to api.openai.com, where it
also bounds a reasoning model's hidden reasoning (raise it for those).

Retries are ctxeval's (retries.py: the SDKs' policy — exponential backoff with jitter, honouring
`retry-after-ms` / `retry-after` — with the SDKs' own retries off), so that a caller's deadline
(the episode's wall-time budget, passed as `complete(..., deadline=)`) bounds the whole call: each
attempt's timeout is at most the time left, no retry starts once it is spent (nor after a backoff
that would outlast it), a reply still trickling in is cut at it, waiting for a connection slot
counts against it, and a call the deadline cuts raises ModelCallCancelled. This module counts
the HTTP attempts made (an httpx event hook) so an error can say how many were made, and gates
calls through a process-wide semaphore per provider and base URL (plus a matching httpx
connection limit).
"""
from __future__ import annotations

import contextlib
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .. import settings as ctxeval_settings
from .base import ModelError
from .retries import ReplyDeadline

log = logging.getLogger(__name__)

DEFAULT_MAX_RETRIES: int = ctxeval_settings.default("CTXEVAL_MAX_RETRIES")
DEFAULT_TIMEOUT_SECONDS: float = ctxeval_settings.default("CTXEVAL_MODEL_TIMEOUT")
DEFAULT_MAX_CONCURRENT: int = ctxeval_settings.default("CTXEVAL_MAX_CONCURRENT_REQUESTS")
DEFAULT_MAX_OUTPUT_TOKENS: int = ctxeval_settings.default("CTXEVAL_MAX_OUTPUT_TOKENS")  # settings.py says why 4096
CONNECT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    key_vars: tuple[str, ...]
    base_url_var: str
    default_base_url: str
    sdk: str  # the importable SDK package


PROVIDERS: dict[str, ProviderInfo] = {
    "openai": ProviderInfo("openai", ("OPENAI_API_KEY",), "OPENAI_BASE_URL", ctxeval_settings.default("OPENAI_BASE_URL"),
                           "openai"),
    "anthropic": ProviderInfo("anthropic", ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"), "ANTHROPIC_BASE_URL",
                              ctxeval_settings.default("ANTHROPIC_BASE_URL"), "anthropic"),
}


# -- resolved configuration ------------------------------------------------------------------
@dataclass
class ClientConfig:
    provider: str
    model: str
    base_url: str
    base_url_is_default: bool
    max_retries: int
    timeout: float
    max_concurrent: int
    max_tokens: int
    api_key: str | None = field(default=None, repr=False)
    key_var: str | None = None  # which variable the key came from (never the key itself)
    key_source: str | None = None  # "argument" | "environment" | "<path>/.env" | "placeholder"
    auth_token: bool = False  # Anthropic: the credential is an ANTHROPIC_AUTH_TOKEN bearer token

    def describe(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "base_url": self.base_url,
                "max_retries": self.max_retries, "timeout_s": self.timeout,
                "max_concurrent_requests": self.max_concurrent, "max_tokens": self.max_tokens,
                "key_variable": self.key_var, "key_source": self.key_source}


def _base_url(info: ProviderInfo, given: str | None) -> tuple[str, bool]:
    """The base URL (no trailing slash) and whether it is the provider's own."""
    found = None if given else ctxeval_settings.lookup(info.base_url_var)
    chosen = given or (found.value if found else None)
    url = (chosen or info.default_base_url).rstrip("/")
    return url, chosen is None or url == info.default_base_url.rstrip("/")


def _api_key(info: ProviderInfo, model: str, given: str | None, is_default_url: bool,
             require_key: bool) -> tuple[str | None, str | None, str | None]:
    """(key, the variable it came from, where that was). A missing key is a ModelError naming the
    variable to set; an OpenAI-compatible server at a custom base URL gets a placeholder key."""
    if given:
        return given, None, "argument"
    for var in info.key_vars:
        found = ctxeval_settings.lookup(var)
        if found:
            return found.value, var, found.source
    if not require_key:
        return None, None, None
    if info.name == "openai" and not is_default_url:
        return "EMPTY", None, "placeholder"  # vLLM/Ollama accept any key
    raise ModelError(f"{info.name}:{model}: no API key. Set {info.key_vars[0]} in the environment or in a .env "
                     f"file (looked in {Path.cwd() / '.env'} and {ctxeval_settings.PROJECT_DOTENV}).")


def resolve_config(provider: str, model: str, *, base_url: str | None = None, api_key: str | None = None,
                   max_retries: int | None = None, timeout: float | None = None,
                   max_concurrent: int | None = None, max_tokens: int | None = None,
                   require_key: bool = True) -> ClientConfig:
    """Everything a client needs, from arguments, the environment and .env files."""
    info = PROVIDERS[provider]
    if not model:
        raise ModelError(f"{provider}: no model name; use {provider}:<model>")
    url, is_default = _base_url(info, base_url)
    key, key_var, source = _api_key(info, model, api_key, is_default, require_key)
    get = ctxeval_settings.get
    return ClientConfig(provider=provider, model=model, base_url=url, base_url_is_default=is_default,
                        max_retries=get("CTXEVAL_MAX_RETRIES", max_retries),
                        timeout=get("CTXEVAL_MODEL_TIMEOUT", timeout),
                        max_concurrent=get("CTXEVAL_MAX_CONCURRENT_REQUESTS", max_concurrent),
                        max_tokens=get("CTXEVAL_MAX_OUTPUT_TOKENS", max_tokens),
                        api_key=key, key_var=key_var, key_source=source,
                        auth_token=key_var == "ANTHROPIC_AUTH_TOKEN")


# -- concurrency -----------------------------------------------------------------------------
class SlotTimeout(Exception):
    """No slot of a ConcurrencyGate came free in time."""


class ConcurrencyGate:
    """At most `limit` calls in flight; `peak` is kept for diagnostics and tests."""

    def __init__(self, limit: int):
        self.limit = limit
        self._semaphore = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0

    @contextlib.contextmanager
    def slot(self, timeout: float | None = None) -> Iterator[None]:
        """Hold a slot; SlotTimeout when none comes free within `timeout` seconds (None: wait)."""
        if not self._semaphore.acquire(timeout=timeout):
            raise SlotTimeout(f"no free slot within {timeout:.1f}s")
        try:
            with self._lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            yield
        finally:
            with self._lock:
                self.active -= 1
            self._semaphore.release()


_GATES: dict[tuple[str, str], ConcurrencyGate] = {}
_GATES_LOCK = threading.Lock()


def gate_for(provider: str, base_url: str, limit: int) -> ConcurrencyGate:
    """The process-wide gate of one provider + base URL. A model asking for a different limit
    replaces the gate (calls already in flight finish on the old one)."""
    key = (provider, base_url.rstrip("/"))
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None or gate.limit != limit:
            if gate is not None:
                log.info("concurrency limit for %s %s changed from %d to %d", provider, base_url, gate.limit, limit)
            gate = _GATES[key] = ConcurrencyGate(limit)
        return gate


# -- HTTP attempts and the SDK's http client -------------------------------------------------
class AttemptCounter:
    """Counts the HTTP requests the SDK sends on the current thread (its retries included)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def reset(self) -> None:
        self._local.count = 0

    @property
    def count(self) -> int:
        return getattr(self._local, "count", 0)

    def hook(self, request: Any) -> None:  # an httpx "request" event hook
        self._local.count = self.count + 1


def make_http_client(sdk: Any, config: ClientConfig, counter: AttemptCounter, reply_deadline: ReplyDeadline) -> Any:
    """The SDK's own default httpx client class (httpx or httpx2, whichever the SDK uses) with the
    connection limit, the attempt-counting hook and the hook cutting a reply at its call's deadline."""
    limits = type(sdk.DEFAULT_CONNECTION_LIMITS)(max_connections=config.max_concurrent,
                                                 max_keepalive_connections=config.max_concurrent)
    return sdk.DefaultHttpxClient(limits=limits, timeout=sdk_timeout(sdk, config.timeout),
                                  event_hooks={"request": [counter.hook], "response": [reply_deadline.hook]})


def sdk_timeout(sdk: Any, seconds: float) -> Any:
    """The SDK's timeout object: `seconds` per read/write, connecting in at most CONNECT_TIMEOUT_SECONDS."""
    return type(sdk.DEFAULT_TIMEOUT)(seconds, connect=min(seconds, CONNECT_TIMEOUT_SECONDS))


def import_sdk(provider: str) -> Any:
    info = PROVIDERS[provider]
    try:
        return __import__(info.sdk)
    except ImportError as exc:
        raise ModelError(f"{provider}: the `{info.sdk}` package is not installed ({exc}); "
                         f"run `pip install -e .` in the project") from None


# -- errors ----------------------------------------------------------------------------------
_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,})")


__all__ = ["AttemptCounter", "ClientConfig", "ConcurrencyGate", "DEFAULT_MAX_OUTPUT_TOKENS", "PROVIDERS", "SlotTimeout",
           "gate_for", "import_sdk", "make_http_client", "resolve_config", "sdk_timeout"]
