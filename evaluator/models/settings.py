"""Settings and plumbing shared by the real API clients (`openai:`, `anthropic:`).

Where a setting comes from (first found wins):

1. the explicit argument (`create_model(spec, base_url=..., max_retries=...)`, the CLI's `--base-url`);
2. the process environment;
3. a `.env` file in the current directory, then one in the project root (python-dotenv syntax).
   A `.env` file never overrides the environment and is never copied into `os.environ`, so it
   does not leak into subprocesses.

| variable                          | meaning                                              | default |
|-----------------------------------|------------------------------------------------------|---------|
| OPENAI_API_KEY                    | key for `openai:<model>`                             | —       |
| OPENAI_BASE_URL                   | any OpenAI-compatible server (vLLM, Ollama, proxy)   | api.openai.com/v1 |
| ANTHROPIC_API_KEY                 | key for `anthropic:<model>` (ANTHROPIC_AUTH_TOKEN also accepted) | — |
| ANTHROPIC_BASE_URL                | another Messages-API endpoint                        | api.anthropic.com |
| CTXEVAL_MAX_RETRIES               | retries after the first attempt (429/408/409/5xx/timeouts/connection errors) | 4 |
| CTXEVAL_MODEL_TIMEOUT             | seconds one HTTP attempt may take (never more than the episode's time left) | 300 |
| CTXEVAL_MAX_CONCURRENT_REQUESTS   | in-flight calls per provider + base URL, process-wide | 4      |
| CTXEVAL_MAX_OUTPUT_TOKENS         | max tokens per reply, sent in every request (`max_tokens=`) | 4096 |

Keys are held only by the SDK client objects: they are never printed, never part of
`describe()`, and they are scrubbed from every `ModelError` message.

The output cap is always sent (DEFAULT_MAX_OUTPUT_TOKENS says why 4096): as `max_tokens` to
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
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..errors import CtxevalError
from ..paths import PROJECT_ROOT
from .base import ModelError
from .retries import ReplyDeadline

log = logging.getLogger(__name__)

DEFAULT_MAX_RETRIES = 4
DEFAULT_TIMEOUT_SECONDS = 300.0
DEFAULT_MAX_CONCURRENT = 4
# An agent turn (a tool call, a JSON proposal, a file's content) fits with room to spare, and a model
# stuck in a loop stops after minutes of generation at worst instead of running into the HTTP timeout.
DEFAULT_MAX_OUTPUT_TOKENS = 4096
CONNECT_TIMEOUT_SECONDS = 10.0

# The project-root .env; tests point this elsewhere.
PROJECT_DOTENV: Path = PROJECT_ROOT / ".env"


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    key_vars: tuple[str, ...]
    base_url_var: str
    default_base_url: str
    sdk: str  # the importable SDK package


PROVIDERS: dict[str, ProviderInfo] = {
    "openai": ProviderInfo("openai", ("OPENAI_API_KEY",), "OPENAI_BASE_URL", "https://api.openai.com/v1", "openai"),
    "anthropic": ProviderInfo("anthropic", ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"), "ANTHROPIC_BASE_URL",
                              "https://api.anthropic.com", "anthropic"),
}


# -- .env and environment --------------------------------------------------------------------
def dotenv_files() -> list[Path]:
    """The .env files consulted, most specific first (current directory, then project root)."""
    found: list[Path] = []
    for path in (Path.cwd() / ".env", PROJECT_DOTENV):
        try:
            if path.is_file() and all(not path.samefile(p) for p in found):
                found.append(path)
        except OSError:
            continue
    return found


def _parse_dotenv(path: Path) -> dict[str, str]:
    try:
        from dotenv import dotenv_values
    except ImportError:  # python-dotenv is a dependency; this keeps a broken install usable
        values: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.removeprefix("export ").partition("=")
            values[key.strip()] = value.strip().strip("'\"")
        return values
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def dotenv_settings() -> dict[str, str]:
    """Merged .env values (the current directory's win over the project root's). Read afresh each
    time: it is small, and a model is created once per episode."""
    merged: dict[str, str] = {}
    for path in reversed(dotenv_files()):
        try:
            merged.update(_parse_dotenv(path))
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
    return merged


def setting(name: str, default: str | None = None, dotenv: Mapping[str, str] | None = None) -> str | None:
    """An environment variable, else a .env value, else `default`. Empty values count as unset."""
    value = os.environ.get(name)
    if value:
        return value
    values = dotenv_settings() if dotenv is None else dotenv
    return values.get(name) or default


def _number(name: str, raw: Any, kind: type, minimum: float) -> Any:
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise CtxevalError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise CtxevalError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


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


def _key_source(var: str) -> str:
    if os.environ.get(var):
        return "environment"
    for path in dotenv_files():
        try:
            if _parse_dotenv(path).get(var):
                return str(path)
        except OSError:
            continue
    return ".env"


def resolve_config(provider: str, model: str, *, base_url: str | None = None, api_key: str | None = None,
                   max_retries: int | None = None, timeout: float | None = None,
                   max_concurrent: int | None = None, max_tokens: int | None = None,
                   require_key: bool = True) -> ClientConfig:
    """Everything a client needs, from arguments, the environment and .env files. A missing key is
    a ModelError naming the variable to set (an OpenAI-compatible server at a custom base URL may
    run without one: a placeholder key is sent)."""
    info = PROVIDERS[provider]
    if not model:
        raise ModelError(f"{provider}: no model name; use {provider}:<model>")
    env = dotenv_settings()
    chosen_url = base_url or setting(info.base_url_var, dotenv=env)
    url = (chosen_url or info.default_base_url).rstrip("/")
    is_default = chosen_url is None or url == info.default_base_url.rstrip("/")

    key, key_var, source, auth_token = api_key, None, "argument" if api_key else None, False
    if not key:
        for var in info.key_vars:
            value = setting(var, dotenv=env)
            if value:
                key, key_var, source = value, var, _key_source(var)
                auth_token = var == "ANTHROPIC_AUTH_TOKEN"
                break
    if not key and require_key:
        if provider == "openai" and not is_default:
            key, key_var, source = "EMPTY", None, "placeholder"  # vLLM/Ollama accept any key
        else:
            raise ModelError(
                f"{provider}:{model}: no API key. Set {info.key_vars[0]} in the environment or in a .env "
                f"file (looked in {Path.cwd() / '.env'} and {PROJECT_DOTENV}).")

    retries = _number("max_retries (CTXEVAL_MAX_RETRIES)",
                      max_retries if max_retries is not None
                      else setting("CTXEVAL_MAX_RETRIES", str(DEFAULT_MAX_RETRIES), env), int, 0)
    seconds = _number("timeout (CTXEVAL_MODEL_TIMEOUT)",
                      timeout if timeout is not None
                      else setting("CTXEVAL_MODEL_TIMEOUT", str(DEFAULT_TIMEOUT_SECONDS), env), float, 0.001)
    limit = _number("max_concurrent (CTXEVAL_MAX_CONCURRENT_REQUESTS)",
                    max_concurrent if max_concurrent is not None
                    else setting("CTXEVAL_MAX_CONCURRENT_REQUESTS", str(DEFAULT_MAX_CONCURRENT), env), int, 1)
    out_tokens = _number("max_tokens (CTXEVAL_MAX_OUTPUT_TOKENS)",
                         max_tokens if max_tokens is not None
                         else setting("CTXEVAL_MAX_OUTPUT_TOKENS", str(DEFAULT_MAX_OUTPUT_TOKENS), env), int, 1)
    return ClientConfig(provider=provider, model=model, base_url=url, base_url_is_default=is_default,
                        max_retries=retries, timeout=seconds, max_concurrent=limit, max_tokens=out_tokens,
                        api_key=key, key_var=key_var, key_source=source, auth_token=auth_token)


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


from .api_model import ApiModel, api_error, failure_summary, redact  # noqa: E402,F401 (re-exported)

__all__ = ["ApiModel", "AttemptCounter", "ClientConfig", "ConcurrencyGate", "DEFAULT_MAX_OUTPUT_TOKENS", "PROVIDERS",
           "SlotTimeout", "api_error", "dotenv_files", "dotenv_settings", "failure_summary", "gate_for", "import_sdk",
           "make_http_client", "redact", "resolve_config", "setting"]
