"""Retries and deadlines of the API clients' calls (used by settings.ApiModel.call).

ctxeval runs the retries itself, with the SDKs' own switched off, so that a caller's deadline (an
episode's wall-time budget) bounds the whole call: each attempt's HTTP timeout is the configured
one or the time left, whichever is shorter; no attempt starts, and no backoff is slept, that
would end past the deadline; a reply whose bytes trickle in (keep-alive whitespace never trips a
per-read timeout) is cut at the deadline. Without a deadline a call behaves as it always did.

The retry policy is the SDKs' (openai and anthropic): 408/409/429/5xx unless the server's
`x-should-retry` header says otherwise, timeouts and connection errors; exponential backoff with
jitter, or the server's `retry-after-ms` / `retry-after` when it asks for at most two minutes.
"""
from __future__ import annotations

import contextlib
import email.utils
import functools
import importlib
import math
import random
import threading
import time
from typing import Any, Iterator, Mapping

INITIAL_BACKOFF_SECONDS = 0.5  # the SDKs' INITIAL_RETRY_DELAY
MAX_BACKOFF_SECONDS = 8.0  # the SDKs' MAX_RETRY_DELAY
MAX_RETRY_AFTER_SECONDS = 120.0  # a server asking for a longer wait is not retried (as the openai SDK does)
MIN_ATTEMPT_SECONDS = 0.1  # with less time left no reply can arrive: the call is cancelled instead
RETRIABLE_STATUS = (408, 409, 429)  # and every 5xx
RETRY_COUNT_HEADER = "x-stainless-retry-count"  # the SDKs tell the server which retry a request is


class CallClock:
    """The time one call may take: until `deadline` (a time.monotonic() value), or unbounded."""

    def __init__(self, deadline: float | None):
        self.deadline = deadline
        self.started = time.monotonic()

    def left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.monotonic()

    def spent(self) -> float:
        return time.monotonic() - self.started

    def wait_limit(self) -> float | None:
        """How long the call may wait for something (None: forever)."""
        return None if self.deadline is None else max(0.0, self.left())

    def attempt_timeout(self, configured: float) -> float | None:
        """The next attempt's HTTP timeout, or None when too little time is left for one."""
        left = self.left()
        return None if left < MIN_ATTEMPT_SECONDS else min(configured, left)

    def allows_wait(self, seconds: float) -> bool:
        """Whether an attempt can still start after waiting `seconds`."""
        return self.left() - seconds >= MIN_ATTEMPT_SECONDS


def backoff_seconds(retries_taken: int) -> float:
    """Exponential backoff, less up to 25 % jitter (the SDKs' formula)."""
    base = min(INITIAL_BACKOFF_SECONDS * 2.0 ** min(retries_taken, 32), MAX_BACKOFF_SECONDS)
    return base * (1 - 0.25 * random.random())


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a server asked for: `retry-after-ms`, else `retry-after` in seconds or as an HTTP date."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers[name]) / divisor
        except (KeyError, ValueError):
            continue
    try:
        return email.utils.parsedate_to_datetime(headers.get("retry-after") or "").timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _status_retriable(status: int, headers: Mapping[str, str], retry_after: float | None) -> bool:
    if retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS:
        return False
    flag = headers.get("x-should-retry")
    if flag in ("true", "false"):
        return flag == "true"
    return status in RETRIABLE_STATUS or status >= 500


def retry_wait(sdk: Any, exc: BaseException, retries_taken: int) -> float | None:
    """Seconds to wait before retrying after the SDK error `exc`, or None when it is not retried."""
    retry_after = None
    if isinstance(exc, sdk.APIStatusError):
        headers = exc.response.headers
        retry_after = retry_after_seconds(headers)
        if not _status_retriable(exc.status_code, headers, retry_after):
            return None
    elif not isinstance(exc, sdk.APIConnectionError):  # timeouts are connection errors too
        return None
    if retry_after is not None and 0 < retry_after <= MAX_RETRY_AFTER_SECONDS:
        return retry_after
    return backoff_seconds(retries_taken)


def httpx_of(sdk: Any) -> Any:
    """The httpx package the SDK uses (httpx, or a fork such as httpx2)."""
    return importlib.import_module(type(sdk.DEFAULT_CONNECTION_LIMITS).__module__.partition(".")[0])  # httpx's Limits


@functools.lru_cache(maxsize=None)
def _deadline_stream_type(httpx: Any) -> type:
    class DeadlineStream(httpx.SyncByteStream):
        """A reply body that raises the package's ReadTimeout once the deadline has passed."""

        def __init__(self, inner: Any, deadline: float, request: Any):
            self.inner, self.deadline, self.request = inner, deadline, request

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self.inner:
                if time.monotonic() >= self.deadline:
                    raise httpx.ReadTimeout("the call's deadline passed while its reply was arriving",
                                            request=self.request)
                yield chunk

        def close(self) -> None:
            self.inner.close()

    return DeadlineStream


class ReplyDeadline:
    """An httpx "response" event hook: the body of a reply to the call in flight on this thread
    must arrive before that call's deadline (a per-read timeout alone lets a trickle run forever)."""

    def __init__(self, sdk: Any):
        self._stream_type = _deadline_stream_type(httpx_of(sdk))
        self._local = threading.local()

    @contextlib.contextmanager
    def until(self, deadline: float | None) -> Iterator[None]:
        self._local.deadline = deadline
        try:
            yield
        finally:
            self._local.deadline = None

    def hook(self, response: Any) -> None:
        deadline = getattr(self._local, "deadline", None)
        if deadline is not None:
            response.stream = self._stream_type(response.stream, deadline, response.request)


__all__ = ["CallClock", "MIN_ATTEMPT_SECONDS", "RETRIABLE_STATUS", "RETRY_COUNT_HEADER", "ReplyDeadline",
           "backoff_seconds", "retry_after_seconds", "retry_wait"]
