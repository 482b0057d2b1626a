"""Record model replies to a cassette and replay them: reproducible reruns without an API.

`RecordingModel(inner, path)` (or `create_model(spec, record=path)`) appends one line per call to
a JSONL cassette; `replay:<path>` (`ReplayModel`) returns the recorded replies in order.

Cassette format (UTF-8 JSON Lines, one object per call, in call order)::

    {"text": "...",                                  # the reply text ("" when only tool calls)
     "tool_calls": [{"id": "call_1", "name": "run", "arguments": {"cmd": "ls"}}],
                                                     # arguments: an object, or the raw string the
                                                     # model sent when it was not valid JSON
     "usage": {"prompt_tokens": 1200, "completion_tokens": 30, "cached_tokens": 1000, "cost_usd": 0.0023},
     "finish_reason": "tool_calls",                  # or null
     "model": "openai:gpt-4o",                       # optional: who produced it
     "request_sha256": "…"}                          # optional: fingerprint of what was sent

A call that failed is recorded as ``{"error": "<ModelError message>", "model": …, "request_sha256": …}``
and replays as that ModelError; one its deadline cut also has ``"cancelled": true`` and replays as a
ModelCallCancelled (so the replayed episode too ends on its wall-time budget). Only `text` is
required; blank lines are ignored. Keys are never recorded (requests are only fingerprinted).
Replaying past the last line is a ModelError.

`request_sha256` is the SHA-256 of the canonical JSON of the wire-relevant parts of the request
(each message's role, content, tool calls, tool_call_id and name; the tools; the response schema).
`ReplayModel(path, strict=True)` (`create_model("replay:<path>", strict=True)`) checks it and
raises a ModelError when the rerun asks something different from the recording.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from policies.base import Message, ToolCall

from ..errors import CtxevalError
from .base import Model, ModelCallCancelled, ModelError, ModelResponse, ToolSchema, Usage

USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd")


def request_fingerprint(messages: list[Message], tools: list[ToolSchema] | None = None,
                        response_schema: dict[str, Any] | None = None) -> str:
    payload = {
        "messages": [{"role": m.role, "content": m.content, "tool_calls": [c.as_dict() for c in m.tool_calls],
                      "tool_call_id": m.tool_call_id, "name": m.name} for m in messages],
        "tools": [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools or []],
        "response_schema": response_schema,
    }
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def response_to_record(response: ModelResponse) -> dict[str, Any]:
    usage = response.usage
    return {"text": response.text,
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in response.tool_calls],
            "usage": {f: getattr(usage, f) for f in USAGE_FIELDS},
            "finish_reason": response.finish_reason}


def record_to_response(record: dict[str, Any], where: str = "cassette") -> ModelResponse:
    if not isinstance(record.get("text", None), str):
        raise CtxevalError(f"{where}: a reply needs a string `text`")
    try:
        calls = [ToolCall(id=str(c["id"]), name=str(c["name"]), arguments=c.get("arguments", {}))
                 for c in record.get("tool_calls") or []]
    except (KeyError, TypeError):
        raise CtxevalError(f"{where}: each tool call needs `id` and `name`") from None
    raw_usage = record.get("usage") or {}
    if not isinstance(raw_usage, dict):
        raise CtxevalError(f"{where}: `usage` must be an object")
    usage = Usage(**{f: raw_usage[f] for f in USAGE_FIELDS if f in raw_usage})
    return ModelResponse(text=record["text"], usage=usage, tool_calls=calls, finish_reason=record.get("finish_reason"))


def read_cassette(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CtxevalError(f"cannot read replay cassette {path}: {exc}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CtxevalError(f"{path}:{number}: not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise CtxevalError(f"{path}:{number}: each line must be a JSON object")
        if "error" not in record:
            record_to_response(record, f"{path}:{number}")  # validate now, not mid-episode
        records.append(record)
    return records


class ReplayModel(Model):
    """Returns a cassette's replies in order; running out is a ModelError."""

    options = ("strict",)
    spec_name = "<path/to/cassette.jsonl>"

    def __init__(self, path: str | os.PathLike[str], strict: bool = False):
        if not str(path):
            raise CtxevalError("replay needs a cassette: replay:<path/to/cassette.jsonl>")
        self.path = Path(path)
        self.name = f"replay:{path}"
        self.strict = strict
        self.records = read_cassette(self.path)
        self.position = 0
        self._lock = threading.Lock()
        recorded = next((r.get("model") for r in self.records if r.get("model")), None)
        self.recorded_model: str | None = recorded

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "cassette": str(self.path), "replies": len(self.records),
                "recorded_model": self.recorded_model, "strict": self.strict}

    def count_tokens(self, text: str) -> int:
        if self.recorded_model:
            from .tokens import count_tokens_for
            return count_tokens_for(self.recorded_model, text)
        return super().count_tokens(text)

    def complete(self, messages: list[Message], tools: list[ToolSchema] | None = None,
                 response_schema: dict[str, Any] | None = None, *, deadline: float | None = None) -> ModelResponse:
        with self._lock:
            if self.position >= len(self.records):
                raise ModelError(f"replay cassette {self.path} is exhausted: it holds {len(self.records)} "
                                 f"replies and call {self.position + 1} was made")
            record = self.records[self.position]
            self.position += 1
            number = self.position
        if self.strict and record.get("request_sha256"):
            asked = request_fingerprint(messages, tools, response_schema)
            if asked != record["request_sha256"]:
                raise ModelError(f"replay cassette {self.path}: call {number} differs from the recorded request "
                                 f"(strict replay)")
        if "error" in record:
            raise (ModelCallCancelled if record.get("cancelled") else ModelError)(str(record["error"]))
        return record_to_response(record, f"{self.path}: reply {number}")


class RecordingModel(Model):
    """Wraps a model and appends every reply (or failure) to a JSONL cassette."""

    def __init__(self, inner: Model, path: str | os.PathLike[str]):
        self.inner = inner
        self.path = Path(path)
        self.name = inner.name
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def describe(self) -> dict[str, Any]:
        inner = getattr(self.inner, "describe", None)
        return {**(inner() if callable(inner) else {"model": self.inner.name}), "recording_to": str(self.path)}

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, sort_keys=True, default=str)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()

    def complete(self, messages: list[Message], tools: list[ToolSchema] | None = None,
                 response_schema: dict[str, Any] | None = None, *, deadline: float | None = None) -> ModelResponse:
        fingerprint = request_fingerprint(messages, tools, response_schema)
        try:
            response = self.inner.complete(messages, tools=tools, response_schema=response_schema, deadline=deadline)
        except ModelError as exc:
            cut = {"cancelled": True} if isinstance(exc, ModelCallCancelled) else {}
            self._append({"error": str(exc), **cut, "model": self.inner.name, "request_sha256": fingerprint})
            raise
        self._append({**response_to_record(response), "model": self.inner.name, "request_sha256": fingerprint})
        return response


__all__ = ["RecordingModel", "ReplayModel", "read_cassette", "record_to_response", "request_fingerprint",
           "response_to_record"]
