"""`anthropic:<model>`: the Messages API with tool use, through the official `anthropic` SDK.

Wire format (neutral `Message` -> Messages API):

* every system message -> the top-level `system=` string (joined by blank lines, in order)
* user -> `{"role": "user", "content": [{"type": "text", "text"}]}`
* assistant -> `{"role": "assistant", "content": [text block?, {"type": "tool_use", "id", "name",
  "input": {...}}...]}` (raw-string arguments, which Claude never sends, go as {"raw_arguments": s})
* tool -> a `{"type": "tool_result", "tool_use_id", "content", "is_error"?}` block in a user message:
  consecutive tool results (and a user message right after them) merge into ONE user message, as
  the API requires; `is_error` is set for results starting "ERROR:" or with meta ok=False
* empty text is replaced by a placeholder (the API rejects empty text blocks); a conversation that
  would start with the assistant gets a leading "(continue)" user message
* tools -> `[{"name", "description", "input_schema"}]`
* `response_schema` without tools (controller mode) -> a single forced tool `respond` whose
  `input_schema` is the schema (the documented way to get JSON from Claude); its input comes back
  as the reply's text, JSON-encoded. A schema that is not an object schema is put in the system
  prompt instead.
* `max_tokens` is required: CTXEVAL_MAX_OUTPUT_TOKENS or `max_tokens=`, default
  settings.DEFAULT_MAX_OUTPUT_TOKENS.

Reply -> `ModelResponse`: text blocks joined, tool_use blocks -> ToolCall(id, name, input), usage:
`prompt_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens` (so it means
the same as OpenAI's), `cached_tokens = cache_read_input_tokens`, cost with cache reads/writes
priced separately; finish_reason normalised to the OpenAI vocabulary (end_turn/stop_sequence ->
"stop", max_tokens -> "length", tool_use -> "tool_calls", refusal -> "content_filter").
"""
from __future__ import annotations

import inspect
import json
from typing import Any

from policies.base import Message, ToolCall

from .base import ModelError, ModelResponse, ToolSchema
from .api_model import ApiModel
from .settings import make_http_client, sdk_timeout

RESPOND_TOOL = "respond"
EMPTY_TEXT = "(empty)"
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                  "refusal": "content_filter"}


def _text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text if text.strip() else EMPTY_TEXT}


def _tool_input(arguments: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments)
    except (TypeError, ValueError):
        value = None
    return value if isinstance(value, dict) else {"raw_arguments": arguments}


def _is_error(message: Message) -> bool:
    return message.meta.get("ok") is False or message.content.lstrip().startswith("ERROR:")


def to_anthropic_messages(messages: list[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system prompt or None, messages) in the Messages API shape."""
    system: list[str] = []
    wire: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if wire and wire[-1]["role"] == role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": role, "content": blocks})

    for message in messages:
        if message.role == "system":
            if message.content.strip():
                system.append(message.content)
        elif message.role == "user":
            add("user", [_text_block(message.content)])
        elif message.role == "assistant":
            blocks: list[dict[str, Any]] = []
            if message.content.strip() or not message.tool_calls:
                blocks.append(_text_block(message.content))
            blocks.extend({"type": "tool_use", "id": call.id, "name": call.name, "input": _tool_input(call.arguments)}
                          for call in message.tool_calls)
            add("assistant", blocks)
        elif message.role == "tool":
            if message.tool_call_id:
                block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id,
                                         "content": message.content if message.content.strip() else EMPTY_TEXT}
                if _is_error(message):
                    block["is_error"] = True
                add("user", [block])
            else:
                label = f"[result of {message.name}]" if message.name else "[tool result]"
                add("user", [_text_block(f"{label}\n{message.content}")])
        else:
            raise ModelError(f"cannot send a message with role {message.role!r} to the Anthropic API")
    if wire and wire[0]["role"] != "user":
        wire.insert(0, {"role": "user", "content": [_text_block("(continue)")]})
    if not wire:
        wire.append({"role": "user", "content": [_text_block("(continue)")]})
    return ("\n\n".join(system) or None), wire


def to_anthropic_tools(tools: list[ToolSchema]) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description,
             "input_schema": t.parameters or {"type": "object", "properties": {}}} for t in tools]


def _is_object_schema(schema: dict[str, Any]) -> bool:
    return schema.get("type", "object") == "object"


class AnthropicModel(ApiModel):
    provider = "anthropic"
    sdk_error = "AnthropicError"

    def __init__(self, model: str, base_url: str | None = None, *, temperature: float | None = None,
                 **options: Any):
        super().__init__(model, base_url, **options)
        self.temperature = temperature

    def _make_client(self) -> Any:
        credential = ({"auth_token": self.config.api_key} if self.config.auth_token
                      else {"api_key": self.config.api_key})
        extra: dict[str, Any] = {}
        if "open_telemetry" in inspect.signature(self.sdk.Anthropic.__init__).parameters:
            extra["open_telemetry"] = False  # no spans carrying prompts out of the process
        return self.sdk.Anthropic(**credential, base_url=self.config.base_url,
                                  max_retries=0,  # ApiModel.call retries, within the caller's deadline
                                  timeout=sdk_timeout(self.sdk, self.config.timeout),
                                  http_client=make_http_client(self.sdk, self.config, self.attempts,
                                                               self.reply_deadline), **extra)

    def request_body(self, messages: list[Message], tools: list[ToolSchema] | None = None,
                     response_schema: dict[str, Any] | None = None) -> dict[str, Any]:
        """The keyword arguments of `messages.create` (useful to inspect a request)."""
        system, wire = to_anthropic_messages(messages)
        body: dict[str, Any] = {"model": self.model, "max_tokens": self.config.max_tokens, "messages": wire}
        if tools:
            body["tools"] = to_anthropic_tools(tools)
        elif response_schema is not None:
            if _is_object_schema(response_schema):
                schema = {**response_schema, "type": "object"}
                body["tools"] = [{"name": RESPOND_TOOL, "input_schema": schema,
                                  "description": "Give your reply: its input is your whole answer."}]
                body["tool_choice"] = {"type": "tool", "name": RESPOND_TOOL}
            else:
                note = f"Reply with JSON only, matching this JSON Schema: {json.dumps(response_schema)}"
                system = f"{system}\n\n{note}" if system else note
        if system:
            body["system"] = system
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    def send(self, body: dict[str, Any], options: dict[str, Any]) -> Any:
        return self.client.messages.create(**body, **options)

    def reply(self, response: Any, body: dict[str, Any], messages: list[Message]) -> ModelResponse:
        return self.parse_response(response, forced="tool_choice" in body)  # only the forced `respond` tool sets it

    def parse_response(self, response: Any, forced: bool = False) -> ModelResponse:
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in getattr(response, "content", None) or []:
            kind = getattr(block, "type", None)
            if kind == "text":
                texts.append(block.text)
            elif kind == "tool_use":
                raw = block.input
                calls.append(ToolCall(id=block.id, name=block.name,
                                      arguments=raw if isinstance(raw, dict) else _tool_input(raw)))
        finish = FINISH_REASONS.get(response.stop_reason, response.stop_reason)
        if forced:
            answer = next((c for c in calls if c.name == RESPOND_TOOL), None)
            if answer is not None:
                texts = [json.dumps(answer.arguments, ensure_ascii=False, sort_keys=True)]
                calls = []
                if finish == "tool_calls":
                    finish = "stop"
        usage = response.usage
        fresh = usage.input_tokens or 0
        read = getattr(usage, "cache_read_input_tokens", None) or 0
        written = getattr(usage, "cache_creation_input_tokens", None) or 0
        recorded = self.usage(fresh + read + written, usage.output_tokens or 0, read, written)
        return ModelResponse(text="\n".join(texts), usage=recorded, tool_calls=calls, finish_reason=finish)


__all__ = ["AnthropicModel", "to_anthropic_messages", "to_anthropic_tools"]
