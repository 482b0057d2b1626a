"""`openai:<model>`: the Chat Completions API with tool calls, through the official `openai` SDK.

Works with any OpenAI-compatible server (vLLM, Ollama, LiteLLM, a proxy) via `base_url`
(`create_model(..., base_url=...)`, the CLI's `--base-url`, or OPENAI_BASE_URL). Such a server
may need no key: without OPENAI_API_KEY a placeholder is sent to a non-OpenAI base URL.

Wire format (neutral `Message` -> Chat Completions):

* system/user -> `{"role", "content"}`
* assistant -> `{"role": "assistant", "content": text or null, "tool_calls": [{"id", "type": "function",
  "function": {"name", "arguments": <JSON string>}}]}` (raw-string arguments are sent as they were)
* tool -> `{"role": "tool", "tool_call_id", "content"}` (a tool message without an id becomes a
  user message, so a request is never malformed)
* tools -> `[{"type": "function", "function": {"name", "description", "parameters"}}]`, tool_choice auto
* `response_schema` without tools -> `response_format` json_schema (non-strict, any schema works);
  `json_mode="json_object"` (or CTXEVAL_OPENAI_JSON_MODE) asks for a JSON object instead, for
  servers without json_schema support; `json_mode="off"` sends neither.
* the output cap (models/settings.py DEFAULT_MAX_OUTPUT_TOKENS, or `max_tokens=` / CTXEVAL_MAX_OUTPUT_TOKENS)
  is in every request: `max_completion_tokens` to the official API (reasoning models need it),
  `max_tokens` to a compatible server (vLLM, llama.cpp's llama-server and Ollama read that one).

Reply -> `ModelResponse`: text (the refusal text if the model refused), tool calls with arguments
parsed from JSON (kept as the raw string when they are not a JSON object, so the agent loop can
answer with an error observation), usage (`prompt_tokens` includes cached ones,
`prompt_tokens_details.cached_tokens`) with cost from the price table, finish_reason as sent
("stop", "length", "tool_calls", "content_filter").
"""
from __future__ import annotations

import json
import logging
from typing import Any

from policies.base import Message, ToolCall, messages_tokens

from .base import ModelError, ModelResponse, ToolSchema
from .. import settings
from .api_model import ApiModel
from .settings import make_http_client, sdk_timeout

log = logging.getLogger(__name__)

JSON_MODES = ("json_schema", "json_object", "off")


def parse_arguments(raw: Any) -> dict[str, Any] | str:
    """Tool-call arguments: a dict when they are a JSON object, else the raw string."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return raw if isinstance(raw, str) else str(raw)
    return value if isinstance(value, dict) else raw


def arguments_json(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    wire: list[dict[str, Any]] = []
    for message in messages:
        role = message.role
        if role in ("system", "user"):
            wire.append({"role": role, "content": message.content})
        elif role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": message.content or None}
            if message.tool_calls:
                entry["tool_calls"] = [{"id": call.id, "type": "function",
                                        "function": {"name": call.name, "arguments": arguments_json(call.arguments)}}
                                       for call in message.tool_calls]
            elif entry["content"] is None:
                entry["content"] = ""
            wire.append(entry)
        elif role == "tool":
            if message.tool_call_id:
                wire.append({"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content})
            else:
                label = f"[result of {message.name}]" if message.name else "[tool result]"
                wire.append({"role": "user", "content": f"{label}\n{message.content}"})
        else:
            raise ModelError(f"cannot send a message with role {role!r} to the OpenAI API")
    return wire


def to_openai_tools(tools: list[ToolSchema]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters or {"type": "object", "properties": {}}}}
            for t in tools]


class OpenAIModel(ApiModel):
    provider = "openai"
    sdk_error = "OpenAIError"
    options = ApiModel.options + ("json_mode",)

    def __init__(self, model: str, base_url: str | None = None, *, temperature: float | None = None,
                 json_mode: str | None = None, **options: Any):
        super().__init__(model, base_url, **options)
        self.temperature = temperature
        mode = json_mode or settings.get("CTXEVAL_OPENAI_JSON_MODE")
        if mode not in JSON_MODES:
            raise ModelError(f"json_mode must be one of {', '.join(JSON_MODES)}, got {mode!r}")
        self.json_mode = mode

    def _make_client(self) -> Any:
        return self.sdk.OpenAI(api_key=self.config.api_key, base_url=self.config.base_url,
                               organization=settings.get("OPENAI_ORG_ID"), project=settings.get("OPENAI_PROJECT_ID"),
                               max_retries=0,  # ApiModel.call retries, within the caller's deadline
                               timeout=sdk_timeout(self.sdk, self.config.timeout),
                               http_client=make_http_client(self.sdk, self.config, self.attempts, self.reply_deadline))

    def request_body(self, messages: list[Message], tools: list[ToolSchema] | None = None,
                     response_schema: dict[str, Any] | None = None) -> dict[str, Any]:
        """The keyword arguments of `chat.completions.create` (useful to inspect a request)."""
        body: dict[str, Any] = {"model": self.model, "messages": to_openai_messages(messages)}
        if tools:
            body["tools"] = to_openai_tools(tools)
            body["tool_choice"] = "auto"
        elif response_schema is not None and self.json_mode == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "response", "schema": response_schema, "strict": False}}
        elif response_schema is not None and self.json_mode == "json_object":
            body["response_format"] = {"type": "json_object"}
            if not any("json" in (m.get("content") or "").lower() for m in body["messages"]):
                # the API rejects json_object unless the word JSON appears in the messages
                body["messages"].append({"role": "system", "content": "Reply with one JSON object matching "
                                         f"this JSON Schema: {json.dumps(response_schema)}"})
        # official API: max_completion_tokens (required by reasoning models); compatible servers: max_tokens
        body["max_completion_tokens" if self.config.base_url_is_default else "max_tokens"] = self.config.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    def send(self, body: dict[str, Any], options: dict[str, Any]) -> Any:
        return self.client.chat.completions.create(**body, **options)

    def reply(self, response: Any, body: dict[str, Any], messages: list[Message]) -> ModelResponse:
        return self.parse_response(response, messages)

    def parse_response(self, response: Any, messages: list[Message]) -> ModelResponse:
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise ModelError(f"{self.name}: the reply has no choices ({str(response)[:300]})")
        choice = choices[0]
        message = choice.message
        text = message.content or ""
        refusal = getattr(message, "refusal", None)
        if not text and refusal:
            text = refusal
        calls: list[ToolCall] = []
        for index, call in enumerate(getattr(message, "tool_calls", None) or []):
            function = getattr(call, "function", None)
            if function is not None:
                name, raw = function.name, function.arguments
            else:  # a custom (free-form) tool call
                custom = getattr(call, "custom", None)
                name, raw = getattr(custom, "name", "?"), getattr(custom, "input", "")
            calls.append(ToolCall(id=getattr(call, "id", None) or f"call_{index}", name=name,
                                  arguments=parse_arguments(raw)))
        usage = getattr(response, "usage", None)
        if usage is not None and usage.prompt_tokens is not None:
            details = getattr(usage, "prompt_tokens_details", None)
            cached = (getattr(details, "cached_tokens", None) or 0) if details is not None else 0
            recorded = self.usage(usage.prompt_tokens or 0, usage.completion_tokens or 0, cached)
        else:  # some compatible servers send no usage: estimate it
            log.info("%s: the reply has no usage; estimating tokens", self.name)
            recorded = self.usage(messages_tokens(messages, self.count_tokens),
                                  self.count_tokens(text + "".join(f"{c.name}{c.arguments}" for c in calls)))
        return ModelResponse(text=text, usage=recorded, tool_calls=calls, finish_reason=choice.finish_reason)


__all__ = ["OpenAIModel", "parse_arguments", "to_openai_messages", "to_openai_tools"]
