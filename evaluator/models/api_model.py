"""The base of the API-backed models (`openai:`, `anthropic:`) and their error mapping.

Settings, the SDK client's plumbing and the concurrency gate are in settings.py; the retry policy
and deadline are in retries.py.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from policies.base import Message

from .base import Model, ModelCallCancelled, ModelError, ModelResponse, ToolSchema, Usage
from .retries import RETRIABLE_STATUS, RETRY_COUNT_HEADER, CallClock, ReplyDeadline, backoff_seconds, retry_wait
from .settings import (_KEYLIKE, PROVIDERS, AttemptCounter, ClientConfig, SlotTimeout, gate_for, import_sdk,
                       resolve_config, sdk_timeout)

log = logging.getLogger(__name__)


_HINTS = {401: "check the API key ({key_var})", 403: "the key may lack access to this model",
          404: "unknown model name or wrong base URL ({base_url})", 413: "the request is too large",
          429: "rate limited or out of quota"}


def redact(text: str, secrets: tuple[str | None, ...] = ()) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEYLIKE.sub("***", text)


def _error_detail(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    detail = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            detail = inner.get("message") or inner.get("type")
        elif isinstance(inner, str):
            detail = inner
    if not detail:
        detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    detail = " ".join(str(detail).split())
    return detail[:500] + ("…" if len(detail) > 500 else "")


def api_error(config: ClientConfig, exc: BaseException, attempts: int) -> ModelError:
    """A ModelError for an SDK exception: provider, model, status, attempts, whether retries ran out.
    Attributes: provider, model, status_code, attempts, retriable."""
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    where = f"{config.provider}:{config.model}"
    tried = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if isinstance(status, int):
        retriable = status in RETRIABLE_STATUS or status >= 500
        verdict = ("retries exhausted" if attempts > config.max_retries else "gave up") if retriable else "not retriable"
        hint = _HINTS.get(status, "").format(key_var=config.key_var or PROVIDERS[config.provider].key_vars[0],
                                             base_url=config.base_url)
        message = (f"{where}: HTTP {status} ({name}) after {tried}, {verdict}: {_error_detail(exc)}"
                   + (f" [{hint}]" if hint else ""))
    elif "Timeout" in name:
        retriable = True
        message = (f"{where}: request timed out (timeout {config.timeout:g}s per attempt) after {tried}, "
                   f"retries exhausted; base URL {config.base_url}")
    elif "Connection" in name:
        retriable = True
        cause = exc.__cause__ or exc.__context__
        message = (f"{where}: cannot connect to {config.base_url} after {tried}, retries exhausted"
                   + (f": {type(cause).__name__}: {cause}" if cause else ""))
    else:
        retriable = False
        message = f"{where}: {name}: {_error_detail(exc)} (after {tried})"
    error = ModelError(redact(message, (config.api_key,)))
    error.provider, error.model, error.status_code = config.provider, config.model, status
    error.attempts, error.retriable = attempts, retriable
    return error


def failure_summary(exc: BaseException) -> str:
    """One line on a failed attempt, e.g. "HTTP 503 (InternalServerError): busy"."""
    status = getattr(exc, "status_code", None)
    return f"{f'HTTP {status} ' if isinstance(status, int) else ''}({type(exc).__name__}): {_error_detail(exc)}"


# -- the base of the API-backed models --------------------------------------------------------
class ApiModel(Model):
    """What `openai:` and `anthropic:` share: configuration, the SDK client (built with the timeout,
    connection limit and hooks; its own retries off), the retry loop honouring a deadline, the
    concurrency gate, error mapping, the price and the tokenizer. Subclasses translate messages and
    replies."""

    provider = "abstract"
    sdk_error = "Exception"  # the SDK's base exception class name
    options = ("api_key", "max_retries", "timeout", "max_concurrent", "max_tokens", "temperature")
    takes_base_url = True
    spec_name = "<model>"

    def __init__(self, model: str, base_url: str | None = None, *, api_key: str | None = None,
                 max_retries: int | None = None, timeout: float | None = None,
                 max_concurrent: int | None = None, max_tokens: int | None = None):
        from . import pricing, tokens

        self.config = resolve_config(self.provider, model, base_url=base_url, api_key=api_key,
                                     max_retries=max_retries, timeout=timeout,
                                     max_concurrent=max_concurrent, max_tokens=max_tokens)
        self.model = model
        self.name = f"{self.provider}:{model}"
        self.price = pricing.lookup(self.name)
        if not self.price.known:
            log.warning("no price for %s: its calls are recorded with cost 0 (add it via CTXEVAL_PRICES)", self.name)
        self.tokenizer = tokens.tokenizer_for(self.name)
        self.gate = gate_for(self.provider, self.config.base_url, self.config.max_concurrent)
        self.attempts = AttemptCounter()
        self.sdk = import_sdk(self.provider)
        self.reply_deadline = ReplyDeadline(self.sdk)
        self.client = self._make_client()

    def _make_client(self) -> Any:
        raise NotImplementedError

    def request_body(self, messages: list[Message], tools: list[ToolSchema] | None = None,
                     response_schema: dict[str, Any] | None = None) -> dict[str, Any]:
        """The keyword arguments of the SDK's create call (useful to inspect a request)."""
        raise NotImplementedError

    def send(self, body: dict[str, Any], options: dict[str, Any]) -> Any:
        """One attempt: the SDK's create call with `body` and the per-request `options`."""
        raise NotImplementedError

    def reply(self, response: Any, body: dict[str, Any], messages: list[Message]) -> ModelResponse:
        """The SDK's reply to `body` as a ModelResponse."""
        raise NotImplementedError

    def complete(self, messages: list[Message], tools: list[ToolSchema] | None = None,
                 response_schema: dict[str, Any] | None = None, *, deadline: float | None = None) -> ModelResponse:
        body = self.request_body(messages, tools, response_schema)
        response = self.call(lambda options: self.send(body, options), deadline)
        return self.reply(response, body, messages)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, base_url={self.config.base_url!r})"

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count(text)

    def describe(self) -> dict[str, Any]:
        """Settings, tokenizer and price; never the key."""
        return {**self.config.describe(), **self.tokenizer.describe(), "price": self.price.describe()}

    def usage(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
              cache_write_tokens: int = 0) -> Usage:
        return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cached_tokens=cached_tokens,
                     cost_usd=self.price.cost(prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens))

    def call(self, request: Callable[[dict[str, Any]], Any], deadline: float | None = None) -> Any:
        """Run one SDK request, retried, inside the concurrency gate, all before `deadline`
        (time.monotonic(); None: no bound). `request(options)` sends one attempt with the SDK's
        per-request `options` (timeout, retry-count header). An SDK error becomes a ModelError naming
        provider, model, status and attempts; the deadline cutting the call, a ModelCallCancelled."""
        clock = CallClock(deadline)
        self.attempts.reset()
        try:
            with self.gate.slot(clock.wait_limit()):
                return self._attempts(request, clock)
        except SlotTimeout:
            raise self._cancelled(clock, "no connection slot came free (CTXEVAL_MAX_CONCURRENT_REQUESTS)") from None

    def _attempts(self, request: Callable[[dict[str, Any]], Any], clock: CallClock) -> Any:
        base_error = getattr(self.sdk, self.sdk_error)
        last = "no attempt was made"
        for attempt in range(self.config.max_retries + 1):
            seconds = clock.attempt_timeout(self.config.timeout)
            if seconds is None:
                raise self._cancelled(clock, last)
            try:
                with self.reply_deadline.until(clock.deadline):
                    return request({"timeout": sdk_timeout(self.sdk, seconds),
                                    "extra_headers": {RETRY_COUNT_HEADER: str(attempt)}})
            except base_error as exc:
                wait, last = retry_wait(self.sdk, exc, attempt), failure_summary(exc)
                if wait is not None and clock.attempt_timeout(self.config.timeout) is None:
                    raise self._cancelled(clock, last) from exc  # the deadline cut it, or would cut its retry
                if wait is None or attempt == self.config.max_retries:
                    raise api_error(self.config, exc, max(1, self.attempts.count)) from exc
            except ValueError as exc:  # a 200 whose body is not JSON: the SDKs do not retry it
                if attempt == self.config.max_retries:
                    raise ModelError(f"{self.name}: the server's reply was not valid JSON "
                                     f"({attempt + 1} attempts; retries exhausted): {str(exc)[:200]}") from exc
                log.warning("%s: reply was not valid JSON (%s); retrying", self.name, exc)
                wait, last = backoff_seconds(attempt), "the reply was not valid JSON"
            if not clock.allows_wait(wait):
                raise self._cancelled(clock, f"{last}; its retry (in {wait:.1f}s) could not start in time")
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _cancelled(self, clock: CallClock, last: str) -> ModelCallCancelled:
        attempts = self.attempts.count
        message = (f"{self.name}: call cancelled at its deadline (the episode's wall-time budget) after "
                   f"{clock.spent():.1f}s and {attempts} attempt{'s' if attempts != 1 else ''}; last: {last}")
        return ModelCallCancelled(redact(message, (self.config.api_key,)), attempts=attempts, seconds=clock.spent())

    def close(self) -> None:
        self.client.close()
