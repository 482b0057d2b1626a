"""One Claude client for the experiment profiler, with or without an API key.

    from anthropic_client import AnthropicClient
    client = AnthropicClient()
    completion = client.complete(model="claude-sonnet-4-5", system="...", user="...",
                                 temperature=0.2, max_tokens=256, prompt_id="capital_france")
    completion.text, completion.stop_reason, completion.to_dict()

* ANTHROPIC_API_KEY set (or api_key given): the real `anthropic` SDK is imported (lazily, only
  then) and `messages.create` is called with the model, system prompt, one user message,
  temperature and max_tokens.
* No key: the response is simulated, deterministically, from mock_responses.json (by default
  $CTXEVAL_DATA/mock_responses.json, or $CTXEVAL_MOCK_RESPONSES, or the `mock_responses`
  argument). The canned text of `prompt_id` is returned; a simulated token is one
  whitespace-separated word, so a text longer than max_tokens words is cut to its first
  max_tokens words and stop_reason is "max_tokens", otherwise it is returned unchanged with
  stop_reason "end_turn". A prompt id without a canned text (or no prompt_id) gets
  FALLBACK_TEXT. The temperature does not change a simulated response.

The sandbox has no network and no `anthropic` package: without a key the SDK is never imported.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

API_KEY_ENV = "ANTHROPIC_API_KEY"
MOCKS_ENV = "CTXEVAL_MOCK_RESPONSES"
DATA_ENV = "CTXEVAL_DATA"
MOCKS_FILE = "mock_responses.json"
STOP_END_TURN = "end_turn"
STOP_MAX_TOKENS = "max_tokens"
FALLBACK_TEXT = "[simulated] No canned response is available for prompt {prompt_id}."


class ClientError(RuntimeError):
    """The request is invalid or the client cannot answer it; the message says why."""


@dataclass(frozen=True)
class Completion:
    """One model response."""

    text: str
    stop_reason: str  # "end_turn" (finished) or "max_tokens" (cut off), or what the API returned
    model: str
    input_tokens: int
    output_tokens: int
    simulated: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _count_words(text: str) -> int:
    return len(text.split())


def simulate_text(canned: str, max_tokens: int) -> tuple[str, str]:
    """(text, stop_reason) of a simulated response: at most max_tokens words."""
    words = canned.split()
    if len(words) > max_tokens:
        return " ".join(words[:max_tokens]), STOP_MAX_TOKENS
    return canned, STOP_END_TURN


def default_mocks_path() -> Path:
    if os.environ.get(MOCKS_ENV):
        return Path(os.environ[MOCKS_ENV])
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]) / MOCKS_FILE
    raise ClientError(f"no API key and no mock responses: set {MOCKS_ENV} or {DATA_ENV} "
                      f"(the folder holding {MOCKS_FILE})")


def load_mock_responses(path: str | Path) -> dict[str, str]:
    """{prompt_id: canned text} from a mock_responses.json file."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ClientError(f"cannot read mock responses {path}: {exc}") from None
    responses = document.get("responses") if isinstance(document, dict) else None
    if not isinstance(responses, dict):
        raise ClientError(f"{path}: expected an object with a 'responses' object")
    canned: dict[str, str] = {}
    for prompt_id, entry in responses.items():
        text = entry.get("text") if isinstance(entry, dict) else None
        if not isinstance(text, str):
            raise ClientError(f"{path}: responses.{prompt_id}.text must be a string")
        canned[prompt_id] = text
    return canned


class AnthropicClient:
    """The same `complete` call whether the real API or the simulation answers."""

    def __init__(self, api_key: str | None = None, mock_responses: str | Path | None = None):
        self.api_key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)
        self._mocks_path = Path(mock_responses) if mock_responses is not None else None
        self._mocks: dict[str, str] | None = None
        self._sdk_client: Any = None

    @property
    def simulated(self) -> bool:
        """True when responses come from mock_responses.json (no API key)."""
        return not self.api_key

    def complete(self, *, model: str, system: str, user: str, temperature: float, max_tokens: int,
                 prompt_id: str | None = None) -> Completion:
        """Send one system prompt + user message; return the response."""
        if not isinstance(model, str) or not model:
            raise ClientError("model must be a non-empty string")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1:
            raise ClientError(f"temperature must be a number in [0, 1], got {temperature!r}")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ClientError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        if self.simulated:
            return self._simulate(model, system, user, max_tokens, prompt_id)
        return self._call_api(model, system, user, float(temperature), max_tokens)

    # -- simulation --------------------------------------------------------------------
    def _simulate(self, model: str, system: str, user: str, max_tokens: int, prompt_id: str | None) -> Completion:
        if self._mocks is None:
            self._mocks = load_mock_responses(self._mocks_path or default_mocks_path())
        canned = self._mocks.get(prompt_id) if prompt_id is not None else None
        if canned is None:
            canned = FALLBACK_TEXT.format(prompt_id=prompt_id)
        text, stop_reason = simulate_text(canned, max_tokens)
        return Completion(text=text, stop_reason=stop_reason, model=model,
                          input_tokens=_count_words(system) + _count_words(user),
                          output_tokens=_count_words(text), simulated=True)

    # -- the real API ----------------------------------------------------------------------
    def _call_api(self, model: str, system: str, user: str, temperature: float, max_tokens: int) -> Completion:
        if self._sdk_client is None:
            try:
                import anthropic  # lazily: only with a key, never in the offline sandbox
            except ImportError:
                raise ClientError(f"{API_KEY_ENV} is set but the anthropic package is not installed") from None
            self._sdk_client = anthropic.Anthropic(api_key=self.api_key)
        message = self._sdk_client.messages.create(
            model=model, system=system, messages=[{"role": "user", "content": user}],
            temperature=temperature, max_tokens=max_tokens)
        text = "".join(getattr(block, "text", "") for block in message.content
                       if getattr(block, "type", "text") == "text")
        usage = getattr(message, "usage", None)
        return Completion(text=text, stop_reason=str(message.stop_reason), model=str(message.model),
                          input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
                          output_tokens=int(getattr(usage, "output_tokens", 0) or 0), simulated=False)
