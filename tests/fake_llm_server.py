"""A real local HTTP server speaking the OpenAI Chat Completions and Anthropic Messages wire formats.

It listens on 127.0.0.1 on a random port in a background thread and answers from a queue of
scripted replies (then from an optional fallback), recording every request's path, headers and
JSON body so tests can assert what the real SDKs sent:

    with FakeLLMServer() as server:
        server.enqueue(error(429, headers={"retry-after-ms": "10"}), tool_call("run", {"cmd": "ls"}))
        model = create_model("openai:gpt-4o", base_url=server.openai_base_url, api_key="sk-test")
        ...
        assert len(server.requests) == 2

Routes: POST /v1/chat/completions (OpenAI; base_url = server.openai_base_url = <url>/v1) and
POST /v1/messages (Anthropic; base_url = server.anthropic_base_url = <url>). A reply is shaped
for the route it answers. `server.peak` is the most requests it ever handled at once.

Slow servers: `hang(seconds)` answers only after `seconds` (a model looping until the HTTP
timeout); `trickle(count, interval)` sends the headers at once, then `count` keep-alive spaces,
one every `interval` seconds, before the JSON body (a per-read timeout never fires).
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"


@dataclass
class Reply:
    """One scripted answer. `body` (a dict, or a str sent verbatim) overrides the generated body;
    `usage` is the wire usage object of the route's format; `delay` seconds pass before answering."""

    status: int = 200
    text: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name", "arguments", "id"?}
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    message: str = "scripted error"
    truncate: bool = False  # announce the whole body, send half of it, hang up (a cut stream)
    trickle_bytes: int = 0  # keep-alive spaces sent before the body, one per `trickle_interval` seconds
    trickle_interval: float = 0.1


def text(content: str, usage: dict[str, Any] | None = None, **fields: Any) -> Reply:
    return Reply(text=content, usage=usage, **fields)


def tool_call(name: str, arguments: dict[str, Any] | str, id: str | None = None, text: str | None = None,
              usage: dict[str, Any] | None = None, **fields: Any) -> Reply:
    """A reply with one tool call; `arguments` as a str is sent verbatim (e.g. invalid JSON)."""
    return Reply(text=text, tool_calls=[{"name": name, "arguments": arguments, "id": id}], usage=usage, **fields)


def hang(seconds: float = 60.0, content: str = "(too late)") -> Reply:
    """A reply that comes only after `seconds` (until the server closes): a call that hangs."""
    return Reply(text=content, delay=seconds)


def trickle(count: int, interval: float = 0.1, content: str = "(trickled)") -> Reply:
    """Headers at once, then `count` spaces `interval` seconds apart, then the body."""
    return Reply(text=content, trickle_bytes=count, trickle_interval=interval)


def error(status: int, message: str = "scripted error", headers: dict[str, str] | None = None,
          **fields: Any) -> Reply:
    return Reply(status=status, message=message, headers=headers or {}, **fields)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON (None if the body was not JSON)
    raw: bytes
    received_at: float


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 503: "api_error",
                529: "overloaded_error"}


class FakeLLMServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.fallback: Reply | None = None
        self.requests: list[RecordedRequest] = []
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -----------------------------------------------------------------------
    def enqueue(self, *replies: Reply) -> "FakeLLMServer":
        with self._lock:
            self.replies.extend(replies)
        return self

    def always(self, reply: Reply) -> "FakeLLMServer":
        """Answer with `reply` whenever the queue is empty (an error storm, a slow server...)."""
        self.fallback = reply
        return self

    def _next(self) -> Reply | None:
        with self._lock:
            return self.replies.popleft() if self.replies else self.fallback

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def start(self) -> "FakeLLMServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                server._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                server._send(self, 404, {"error": {"message": f"no route GET {self.path}"}}, {})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-llm-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a `delay`
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- answering -----------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = handler.path.split("?", 1)[0]
        with self._lock:
            self.requests.append(RecordedRequest("POST", path, {k.lower(): v for k, v in handler.headers.items()},
                                                 body, raw, time.monotonic()))
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            if path not in (OPENAI_PATH, ANTHROPIC_PATH):
                self._send(handler, 404, {"error": {"message": f"no route POST {path}"}}, {"x-should-retry": "false"})
                return
            reply = self._next()
            if reply is None:
                reply = Reply(status=500, message="fake server: no scripted reply left",
                              headers={"x-should-retry": "false"})
            if reply.delay and self._stopping.wait(reply.delay):
                return
            fmt = "openai" if path == OPENAI_PATH else "anthropic"
            model = body.get("model", "fake-model") if isinstance(body, dict) else "fake-model"
            if reply.body is not None:
                payload = reply.body
            elif reply.status >= 400:
                payload = self._error_body(fmt, reply)
            else:
                payload = self._openai_body(reply, model) if fmt == "openai" else self._anthropic_body(reply, model)
            if reply.trickle_bytes:
                self._send_trickled(handler, reply, payload)
            else:
                self._send(handler, reply.status, payload, reply.headers, reply.truncate)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)
        finally:
            with self._lock:
                self.active -= 1

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str],
              truncate: bool = False) -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data[:len(data) // 2] if truncate else data)
        handler.wfile.flush()
        if truncate:
            handler.close_connection = True
            handler.connection.shutdown(2)

    def _send_trickled(self, handler: BaseHTTPRequestHandler, reply: Reply, payload: Any) -> None:
        """The headers, then keep-alive spaces one by one, then the body (a JSON parser skips the spaces)."""
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        handler.send_response(reply.status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(reply.trickle_bytes + len(data)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.flush()
        for _ in range(reply.trickle_bytes):
            if self._stopping.wait(reply.trickle_interval):
                return
            handler.wfile.write(b" ")
            handler.wfile.flush()
        handler.wfile.write(data)
        handler.wfile.flush()

    @staticmethod
    def _error_body(fmt: str, reply: Reply) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(reply.status, "api_error")
        if fmt == "openai":
            return {"error": {"message": reply.message, "type": kind, "param": None, "code": None}}
        return {"type": "error", "error": {"type": kind, "message": reply.message}}

    def _openai_body(self, reply: Reply, model: str) -> dict[str, Any]:
        n = next(self._ids)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": call.get("id") or f"call_fake_{n}_{i}", "type": "function",
                 "function": {"name": call["name"],
                              "arguments": call["arguments"] if isinstance(call["arguments"], str)
                              else json.dumps(call["arguments"])}}
                for i, call in enumerate(reply.tool_calls)]
        usage = reply.usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                                "prompt_tokens_details": {"cached_tokens": 0}}
        return {"id": f"chatcmpl-fake-{n}", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")}],
                "usage": usage}

    def _anthropic_body(self, reply: Reply, model: str) -> dict[str, Any]:
        n = next(self._ids)
        content: list[dict[str, Any]] = []
        if reply.text is not None:
            content.append({"type": "text", "text": reply.text})
        for i, call in enumerate(reply.tool_calls):
            arguments = call["arguments"]
            content.append({"type": "tool_use", "id": call.get("id") or f"toolu_fake_{n}_{i}", "name": call["name"],
                            "input": json.loads(arguments) if isinstance(arguments, str) else arguments})
        usage = reply.usage or {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 0,
                                "cache_creation_input_tokens": 0}
        return {"id": f"msg_fake_{n}", "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn"),
                "stop_sequence": None, "usage": usage}


def fake_llm_server_context() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def fake_llm_server() -> Iterator[FakeLLMServer]:
    """A started FakeLLMServer, closed after the test."""
    yield from fake_llm_server_context()


__all__ = ["ANTHROPIC_PATH", "FakeLLMServer", "OPENAI_PATH", "RecordedRequest", "Reply", "error",
           "fake_llm_server", "hang", "text", "tool_call", "trickle"]
