"""The host's end of a sandbox's PID 1 (inside/supervisor.py): its attached stdin and stdout.

The container is created with its stdin open and "stdin once", so the engine closes PID 1's stdin
when this connection drops; PID 1 then ends the container (auto-removed with its volumes). A
driver that dies, however it dies, takes its sandboxes with it within a second.

Requests are JSON lines; a reader thread drains PID 1's output at all times (so PID 1 never blocks
writing) and hands each reply to the caller waiting for its id, and each output chunk of a command
run over the channel to the sink its caller gave (`submit`). Nothing but PID 1 writes to this
stream: the agent's processes never hold it.
"""
from __future__ import annotations

import base64
import binascii
import json
import socket
import threading
from typing import Any, Callable

from .frames import split_frames

READY_TIMEOUT_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 30.0
KEEP_STDERR_BYTES = 4096
MAX_LINE_BYTES = 1 << 22  # PID 1's longest line is an output chunk: 64 KiB as base64
ChunkSink = Callable[[int, bytes], None]


class SupervisorChannel:
    def __init__(self, sock: Any):
        self.sock: socket.socket = getattr(sock, "_sock", sock)
        self.sock.settimeout(None)
        self._handle = sock  # keeps the SDK's wrapper (and the connection) alive
        self._replies: dict[int, dict[str, Any]] = {}
        self._sinks: dict[int, ChunkSink] = {}
        self.faults: list[str] = []  # what PID 1 sent that made no sense (the caller falls back)
        self._cond = threading.Condition()
        self._next_id = 0
        self._send_lock = threading.Lock()
        self.ready: dict[str, Any] | None = None
        self.closed = False
        self.stderr = b""
        self._thread = threading.Thread(target=self._read, name="sandbox-supervisor", daemon=True)
        self._thread.start()

    # -- reading -------------------------------------------------------------------------------------
    def _read(self) -> None:
        buffer, lines = b"", b""
        try:
            while chunk := self.sock.recv(65536):
                frames, buffer = split_frames(buffer + chunk)
                for stream, payload in frames:
                    if stream == 1:
                        lines = self._lines(lines + payload)
                    elif stream == 2:
                        self.stderr = (self.stderr + payload)[-KEEP_STDERR_BYTES:]
        except OSError:
            pass
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _lines(self, data: bytes) -> bytes:
        *complete, rest = data.split(b"\n")
        for line in complete:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # PID 1's stdout carries only its replies; anything else is noise
            if not isinstance(message, dict):
                continue
            if "chunk" in message:
                self._chunk(message)
                continue
            with self._cond:
                if message.get("ready"):
                    self.ready = message
                elif isinstance(message.get("id"), int):
                    self._replies[message["id"]] = message
                self._cond.notify_all()
        return rest[-MAX_LINE_BYTES:]

    def _chunk(self, message: dict[str, Any]) -> None:
        sink = self._sinks.get(message.get("id"))  # type: ignore[arg-type]
        if sink is None:
            return  # a command its caller gave up on
        try:
            stream, data = message["chunk"], base64.b64decode(message["data"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            stream, data = None, b""
        if stream not in (1, 2):
            self.faults.append(f"malformed output chunk for request {message.get('id')}")
            return
        sink(stream, data)

    # -- asking ----------------------------------------------------------------------------------------
    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> dict[str, Any] | None:
        with self._cond:
            self._cond.wait_for(lambda: self.ready is not None or self.closed, timeout)
            return self.ready

    def send(self, data: bytes) -> bool:
        try:
            with self._send_lock:
                self.sock.sendall(data)
            return True
        except OSError:
            return False

    def request(self, op: str, timeout: float = REQUEST_TIMEOUT_SECONDS, **fields: Any) -> dict[str, Any] | None:
        """PID 1's reply, or None when it does not answer in time (or the channel is gone)."""
        request_id = self.submit(op, **fields)
        if request_id is None:
            return None
        try:
            return self.wait(request_id, timeout)
        finally:
            self.forget(request_id)

    def submit(self, op: str, sink: ChunkSink | None = None, **fields: Any) -> int | None:
        """Send a request; its output chunks (a command's) go to `sink`. None: the channel is gone."""
        with self._cond:
            self._next_id += 1
            request_id = self._next_id
            if sink is not None:
                self._sinks[request_id] = sink
        if self.send(json.dumps({"id": request_id, "op": op, **fields}).encode() + b"\n"):
            return request_id
        self.forget(request_id)
        return None

    def wait(self, request_id: int, timeout: float, until: Callable[[], bool] = lambda: False) -> dict[str, Any] | None:
        """The reply to `request_id` (None after `timeout` seconds, when `until()` turns true, or
        when the channel is gone); it stays for a later wait until forget()."""
        with self._cond:
            self._cond.wait_for(lambda: request_id in self._replies or self.closed or until(), timeout)
            return self._replies.get(request_id)

    def forget(self, request_id: int) -> None:
        """Drop a request's reply and sink: what PID 1 still sends for it is ignored."""
        with self._cond:
            self._replies.pop(request_id, None)
            self._sinks.pop(request_id, None)

    def close(self) -> None:
        """Hang up: PID 1 sees its stdin close and ends the container."""
        for action in (lambda: self.sock.shutdown(socket.SHUT_RDWR), self.sock.close,
                       getattr(self._handle, "close", lambda: None)):
            try:
                action()
            except OSError:
                pass
