"""USD prices per 1M tokens, matched by the longest model-name prefix.

`PRICES_AS_OF` is the date the built-in table reflects: providers' public list prices (standard
tier, no batch discount, prompts under any long-context surcharge threshold) as published on
their pricing pages and checked against public references on that date. Prices change: override
or extend the table with a YAML or JSON file named by CTXEVAL_PRICES:

```yaml
as_of: "2026-11-01"          # optional, reported with every price from the file
prices:                       # (or the mapping itself, without `prices:`)
  gpt-4o: {input: 2.50, output: 10.00, cached_input: 1.25}
  "openai:my-finetune": {input: 3.00, output: 12.00}     # provider-qualified key
  claude-sonnet-4: {input: 3.00, output: 15.00, cached_input: 0.30, cache_write: 3.75}
```

Matching: the model spec "openai:gpt-4o-2024-08-06" is matched against keys that are a prefix of
the model name ("gpt-4o") or of the whole spec ("openai:gpt-4o"), the prefix ending where the
name does or at a "-", "@" or ":" (so "gpt-5" prices "gpt-5-2025-08-07" but not "gpt-5.2", which
stays unknown rather than silently getting another model's price); the longest model-part wins,
a provider-qualified key winning a tie. A name with a vendor path (OpenRouter style
"anthropic/claude-sonnet-4") is also tried without it. An unknown model costs 0 and its
`PriceMatch.known` is False (the client logs a warning once and reports it in `describe()`).

Cost = uncached input × input + cached input × cached_input (default: input) + cache writes ×
cache_write (default: input) + output × output, all per 1M tokens.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import CtxevalError

PRICES_AS_OF = "2026-11-01"


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cached_input: float | None = None  # OpenAI cached input / Anthropic cache hits
    cache_write: float | None = None  # Anthropic 5-minute cache writes

    def as_dict(self) -> dict[str, float | None]:
        return {"input": self.input, "output": self.output, "cached_input": self.cached_input,
                "cache_write": self.cache_write}


def _p(input: float, output: float, cached_input: float | None = None, cache_write: float | None = None) -> Price:
    return Price(input, output, cached_input, cache_write)


# USD per 1M tokens, list prices as of PRICES_AS_OF (see the module docstring).
DEFAULT_PRICES: dict[str, Price] = {
    # --- OpenAI ---------------------------------------------------------------------------
    "gpt-5.5": _p(5.00, 30.00, 0.50),
    "gpt-5.5-pro": _p(30.00, 180.00),
    "gpt-5.4": _p(2.50, 15.00, 0.25),
    "gpt-5.4-mini": _p(0.75, 4.50, 0.075),
    "gpt-5.4-nano": _p(0.20, 1.25, 0.02),
    "gpt-5.4-pro": _p(30.00, 180.00),
    "gpt-5.1": _p(1.25, 10.00, 0.125),
    "gpt-5": _p(1.25, 10.00, 0.125),
    "gpt-5-mini": _p(0.25, 2.00, 0.025),
    "gpt-5-nano": _p(0.05, 0.40, 0.005),
    "gpt-5-pro": _p(15.00, 120.00),
    "gpt-4.1": _p(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "gpt-4o": _p(2.50, 10.00, 1.25),
    "gpt-4o-2024-05-13": _p(5.00, 15.00),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "chatgpt-4o": _p(5.00, 15.00),
    "gpt-4.5": _p(75.00, 150.00, 37.50),
    "gpt-4-turbo": _p(10.00, 30.00),
    "gpt-4": _p(30.00, 60.00),
    "gpt-4-32k": _p(60.00, 120.00),
    "gpt-3.5-turbo": _p(0.50, 1.50),
    "o1": _p(15.00, 60.00, 7.50),
    "o1-mini": _p(1.10, 4.40, 0.55),
    "o1-pro": _p(150.00, 600.00),
    "o3": _p(2.00, 8.00, 0.50),
    "o3-mini": _p(1.10, 4.40, 0.55),
    "o3-pro": _p(20.00, 80.00),
    "o4-mini": _p(1.10, 4.40, 0.275),
    # --- Anthropic (cache hits 0.1x input, 5-minute cache writes 1.25x input) -------------
    "claude-opus-4-5": _p(5.00, 25.00, 0.50, 6.25),
    "claude-opus-4-6": _p(5.00, 25.00, 0.50, 6.25),
    "claude-opus-4-7": _p(5.00, 25.00, 0.50, 6.25),
    "claude-opus-4-8": _p(5.00, 25.00, 0.50, 6.25),
    "claude-opus-5": _p(5.00, 25.00, 0.50, 6.25),
    "claude-opus-4-1": _p(15.00, 75.00, 1.50, 18.75),
    "claude-opus-4": _p(15.00, 75.00, 1.50, 18.75),  # claude-opus-4-0, claude-opus-4-20250514
    "claude-sonnet-4": _p(3.00, 15.00, 0.30, 3.75),  # 4, 4.5, 4.6 (prompts up to 200K tokens)
    "claude-3-7-sonnet": _p(3.00, 15.00, 0.30, 3.75),
    "claude-3-5-sonnet": _p(3.00, 15.00, 0.30, 3.75),
    "claude-haiku-4-5": _p(1.00, 5.00, 0.10, 1.25),
    "claude-3-5-haiku": _p(0.80, 4.00, 0.08, 1.00),
    "claude-3-haiku": _p(0.25, 1.25, 0.03, 0.30),
    "claude-3-opus": _p(15.00, 75.00, 1.50, 18.75),
}


@dataclass(frozen=True)
class PriceMatch:
    spec: str
    key: str | None  # the table key that matched, or None
    price: Price | None
    source: str  # "built-in (as of ...)" | "<file> (as of ...)" | "unknown"

    @property
    def known(self) -> bool:
        return self.price is not None

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
             cache_write_tokens: int = 0) -> float:
        return 0.0 if self.price is None else cost_usd(self.price, prompt_tokens, completion_tokens,
                                                       cached_tokens, cache_write_tokens)

    def describe(self) -> dict[str, Any]:
        return {"known": self.known, "key": self.key, "source": self.source,
                "usd_per_1m": self.price.as_dict() if self.price else None}


def cost_usd(price: Price, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
             cache_write_tokens: int = 0) -> float:
    """`prompt_tokens` counts every input token, cached and cache-written ones included."""
    cached = max(0, min(cached_tokens, prompt_tokens))
    written = max(0, min(cache_write_tokens, prompt_tokens - cached))
    fresh = prompt_tokens - cached - written
    cached_rate = price.input if price.cached_input is None else price.cached_input
    write_rate = price.input if price.cache_write is None else price.cache_write
    return (fresh * price.input + cached * cached_rate + written * write_rate
            + completion_tokens * price.output) / 1_000_000


def _parse_price(key: str, raw: Any, origin: str) -> Price:
    if not isinstance(raw, dict) or "input" not in raw or "output" not in raw:
        raise CtxevalError(f"{origin}: price of {key!r} needs at least `input` and `output` (USD per 1M tokens)")
    unknown = set(raw) - {"input", "output", "cached_input", "cache_write"}
    if unknown:
        raise CtxevalError(f"{origin}: price of {key!r} has unknown fields {sorted(unknown)}")
    try:
        values = {k: (None if v is None else float(v)) for k, v in raw.items()}
    except (TypeError, ValueError):
        raise CtxevalError(f"{origin}: price of {key!r} must be numbers, got {raw!r}") from None
    if any(v is not None and v < 0 for v in values.values()):
        raise CtxevalError(f"{origin}: price of {key!r} must not be negative")
    return Price(**values)


@lru_cache(maxsize=8)
def _load_overrides(path: str, mtime: float) -> tuple[dict[str, Price], str]:
    origin = path
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CtxevalError(f"CTXEVAL_PRICES: cannot read {path}: {exc}") from None
    try:
        if path.endswith(".json"):
            data = json.loads(text)
        else:
            import yaml
            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
        raise CtxevalError(f"CTXEVAL_PRICES: {path} is not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CtxevalError(f"CTXEVAL_PRICES: {path} must hold a mapping of model prefix -> price")
    as_of = str(data.get("as_of", "unknown date"))
    table = data.get("prices", {k: v for k, v in data.items() if k != "as_of"})
    if not isinstance(table, dict):
        raise CtxevalError(f"CTXEVAL_PRICES: `prices` in {path} must be a mapping")
    return {str(k): _parse_price(str(k), v, origin) for k, v in table.items()}, f"{path} (as of {as_of})"


def price_table() -> tuple[dict[str, tuple[Price, str]], str | None]:
    """The effective table: built-in prices overlaid with CTXEVAL_PRICES, each with its source."""
    builtin = f"built-in (as of {PRICES_AS_OF})"
    table = {k: (v, builtin) for k, v in DEFAULT_PRICES.items()}
    path = settings.get("CTXEVAL_PRICES")
    if not path:
        return table, None
    try:
        mtime = os.path.getmtime(path)
    except OSError as exc:
        raise CtxevalError(f"CTXEVAL_PRICES: cannot read {path}: {exc}") from None
    overrides, source = _load_overrides(path, mtime)
    table.update({k: (v, source) for k, v in overrides.items()})
    return table, path


def _prefix_match(name: str, key: str) -> bool:
    """`key` is `name` or a prefix of it ending at a separator: "gpt-4o" matches "gpt-4o-2024-08-06"
    but not "gpt-4o1"; "gpt-5" does not match "gpt-5.2" (a different model with its own price)."""
    return name == key or (name.startswith(key) and name[len(key)] in "-@:")


def lookup(spec: str) -> PriceMatch:
    """The price of `provider:model` (or a bare model name) by longest-prefix match."""
    provider, sep, model = spec.partition(":")
    if not sep:
        provider, model = "", spec
    names = [model] + ([model.rsplit("/", 1)[1]] if "/" in model else [])
    table, _ = price_table()
    best: tuple[int, int, str] | None = None
    for key in table:
        key_provider, key_sep, key_model = key.partition(":")
        if key_sep and key_model and provider:
            if key_provider != provider:
                continue
            candidates, qualified = [key_model], 1
        elif key_sep:
            continue
        else:
            candidates, qualified = [key], 0
        for name in names:
            for candidate in candidates:
                if _prefix_match(name, candidate):
                    rank = (len(candidate), qualified, key)
                    if best is None or rank[:2] > best[:2]:
                        best = rank
    if best is None:
        return PriceMatch(spec, None, None, "unknown")
    price, source = table[best[2]]
    return PriceMatch(spec, best[2], price, source)


__all__ = ["DEFAULT_PRICES", "PRICES_AS_OF", "Price", "PriceMatch", "cost_usd", "lookup", "price_table"]
