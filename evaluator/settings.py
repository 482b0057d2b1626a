"""Every host-side setting ctxeval reads from the environment, in one table (SETTINGS).

Where a value comes from (first found wins):

1. an explicit argument, where the API takes one (`create_model(spec, max_retries=...)`, `--base-url`);
2. the process environment;
3. a `.env` file in the current directory, then one in the project root (python-dotenv syntax).
   A `.env` file never overrides the environment and is never copied into `os.environ`, so it
   does not leak into subprocesses (nor into a sandbox).

An empty value counts as unset. Values are read at call time (tests change the environment), and
a value that does not parse is a CtxevalError naming the variable, the value and where it came from.

Not here: the variables ctxeval passes *into* a sandbox (CTXEVAL_WORKSPACE, CTXEVAL_TOOLS,
CTXEVAL_DATA, CTXEVAL_GRADER, CTXEVAL_PRIVATE, CTXEVAL_OUTPUT, CTXEVAL_RUN_*, CTXEVAL_EXEC_*,
CTXEVAL_LOCAL_SANDBOX, CTXEVAL_GRADING_LIB, CTXEVAL_BUNDLE_LIB): they are the sandbox's protocol, not settings (PROTOCOL_VARIABLES).
`python -m evaluator.settings` prints the table the README shows (markdown_table()).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from .errors import CtxevalError

log = logging.getLogger(__name__)

# The project-root .env (this file is <project>/evaluator/settings.py); tests point this elsewhere.
PROJECT_DOTENV: Path = Path(__file__).resolve().parent.parent / ".env"

# Set by ctxeval for the programs in a sandbox, never read from the host's settings.
PROTOCOL_VARIABLES = ("CTXEVAL_WORKSPACE", "CTXEVAL_TOOLS", "CTXEVAL_DATA", "CTXEVAL_GRADER", "CTXEVAL_PRIVATE",
                      "CTXEVAL_OUTPUT", "CTXEVAL_RUN_INPUTS", "CTXEVAL_RUN_OUTPUT", "CTXEVAL_RUN_RESULTS",
                      "CTXEVAL_EXEC_NONCE", "CTXEVAL_EXEC_TIMEOUT", "CTXEVAL_EXEC_OUTPUT_CAP", "CTXEVAL_EXEC_UID",
                      "CTXEVAL_EXEC_CWD", "CTXEVAL_EXEC_HELPER", "CTXEVAL_LOCAL_SANDBOX", "CTXEVAL_GRADING_LIB",
                      "CTXEVAL_BUNDLE_LIB")


# -- parsers: raw text (or an explicit argument) -> value; ValueError says what was expected ----------
Parser = Callable[[Any], Any]


def text(raw: Any) -> str:
    return str(raw)


def _at_least(convert: Callable[[Any], Any], minimum: float, expected: str) -> Parser:
    """A parser: `convert` the raw value, then require it to be at least `minimum`."""
    def parse(raw: Any) -> Any:
        try:
            value = convert(raw)
        except (TypeError, ValueError):
            raise ValueError(expected) from None
        if not value >= minimum:  # also rejects nan
            raise ValueError(expected)
        return value
    return parse


def integer(minimum: int) -> Parser:
    return _at_least(int, minimum, f"a whole number of at least {minimum}")


def number(minimum: float) -> Parser:
    return _at_least(float, minimum, f"a number of at least {minimum:g}")


def boolean(raw: Any) -> bool:
    word = str(raw).strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError("one of 1/true/yes/on or 0/false/no/off")


def choice(*options: str) -> Parser:
    def parse(raw: Any) -> str:
        word = str(raw).strip().lower()
        if word not in options:
            raise ValueError(f"one of {', '.join(options)}")
        return word
    return parse


# -- the table -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    name: str
    parse: Parser
    default: Any  # the value when unset; None when the code that reads it computes the default
    meaning: str  # one line, for the README
    shown_default: str | None = None  # the README's default column when `default` alone would not say it


def _table(*settings: Setting) -> Mapping[str, Setting]:
    return MappingProxyType({s.name: s for s in settings})


SETTINGS: Mapping[str, Setting] = _table(
    # models (models/settings.py, the openai and anthropic clients)
    Setting("OPENAI_API_KEY", text, None, "key for `openai:<model>`"),
    Setting("OPENAI_BASE_URL", text, "https://api.openai.com/v1",
            "any OpenAI-compatible server (vLLM, Ollama, a proxy); one that is not api.openai.com may need no key"),
    Setting("OPENAI_ORG_ID", text, None, "OpenAI organization sent with each request"),
    Setting("OPENAI_PROJECT_ID", text, None, "OpenAI project sent with each request"),
    Setting("ANTHROPIC_API_KEY", text, None, "key for `anthropic:<model>`"),
    Setting("ANTHROPIC_AUTH_TOKEN", text, None, "bearer token for `anthropic:<model>`, used when ANTHROPIC_API_KEY is unset"),
    Setting("ANTHROPIC_BASE_URL", text, "https://api.anthropic.com", "another Messages-API endpoint"),
    Setting("CTXEVAL_MAX_RETRIES", integer(0), 4,
            "retries after the first attempt (429/408/409/5xx, timeouts, connection errors)"),
    Setting("CTXEVAL_MODEL_TIMEOUT", number(0.001), 300.0,
            "seconds one HTTP attempt may take (never more than the episode's time left)"),
    Setting("CTXEVAL_MAX_CONCURRENT_REQUESTS", integer(1), 4, "model calls in flight per provider + base URL, process-wide"),
    # An agent turn (a tool call, a JSON proposal, a file's content) fits with room to spare, and a model stuck
    # in a loop stops after minutes of generation at worst instead of running into the HTTP timeout.
    Setting("CTXEVAL_MAX_OUTPUT_TOKENS", integer(1), 4096,
            "max tokens per reply, sent in every request (raise it for reasoning models)"),
    Setting("CTXEVAL_OPENAI_JSON_MODE", choice("json_schema", "json_object", "off"), "json_schema",
            "how `openai:` asks for JSON: `json_object` for servers without json_schema support, `off` for neither"),
    # token counting (models/tokens.py)
    Setting("CTXEVAL_TOKENIZER", choice("auto", "estimate"), "auto",
            "`estimate` counts about four characters per token instead of using tiktoken"),
    Setting("CTXEVAL_TIKTOKEN_DOWNLOAD", boolean, False, "let tiktoken download an encoding it has not cached"),
    Setting("CTXEVAL_TIKTOKEN_TIMEOUT", number(0), 10.0,
            "seconds loading a tiktoken encoding may take before counting falls back"),
    # cost (models/pricing.py)
    Setting("CTXEVAL_PRICES", text, None, "a YAML or JSON file of prices (USD per 1M tokens) overlaid on the built-in table",
            shown_default="built-in table"),
    # where things live (paths.py, analysis/leaderboard.py, sandbox/staging.py)
    Setting("CTXEVAL_RUNS_DIR", text, None, "where runs are written and looked up",
            shown_default="`<project>/runs` in a checkout, else `./runs`"),
    Setting("CTXEVAL_CACHE_DIR", text, None, "prepared data and other regenerable state",
            shown_default="`$XDG_CACHE_HOME/ctxeval` or `~/.cache/ctxeval`"),
    Setting("CTXEVAL_LEADERBOARD_DIR", text, None, "where accepted leaderboard submissions are stored",
            shown_default="`<project>/leaderboard` in a checkout, else `./leaderboard`"),
    Setting("CTXEVAL_MOUNT_ROOT", text, None, "where folders are staged (by content hash) before they are mounted into a sandbox",
            shown_default="`<tmp>/ctxeval-mounts-<uid>`"),
    # tracing (tracing/settings.py)
    Setting("PHOENIX_COLLECTOR_ENDPOINT", text, None, "Phoenix (or any OTLP/HTTP collector) to export traces to",
            shown_default="— (off)"),
    Setting("PHOENIX_API_KEY", text, None, "sent to Phoenix as a bearer token (Phoenix Cloud, auth)"),
    Setting("PHOENIX_PROJECT_NAME", text, "ctxeval", "the Phoenix project the spans land in"),
    Setting("CTXEVAL_OTLP_TIMEOUT", number(0), 10.0, "seconds one trace export may take before it is dropped"),
)


# -- .env files ------------------------------------------------------------------------------------
def dotenv_files() -> list[Path]:
    """The .env files consulted, most specific first (current directory, then project root)."""
    found: list[Path] = []
    for path in (Path.cwd() / ".env", PROJECT_DOTENV):
        try:
            if path.is_file() and all(not path.samefile(p) for p in found):
                found.append(path)
        except OSError:
            continue
    return found


@lru_cache(maxsize=16)
def _parse_dotenv(path: Path, mtime_ns: int, size: int) -> Mapping[str, str]:
    """One file's values; cached until the file changes (token counting reads settings often)."""
    from dotenv import dotenv_values  # imported here: `ctxeval --help` stays fast
    return MappingProxyType({k: v for k, v in dotenv_values(path).items() if v})


def _dotenv_values(path: Path) -> Mapping[str, str]:
    try:
        info = path.stat()
        return _parse_dotenv(path, info.st_mtime_ns, info.st_size)
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
        return {}


@dataclass(frozen=True)
class Found:
    value: str
    source: str  # "environment" or the path of the .env file


def lookup(name: str) -> Found | None:
    """The raw text of a table variable and where it came from, or None when it is unset."""
    if name not in SETTINGS:
        raise KeyError(f"{name} is not in evaluator.settings.SETTINGS")
    value = os.environ.get(name)
    if value:
        return Found(value, "environment")
    for path in dotenv_files():
        value = _dotenv_values(path).get(name)
        if value:
            return Found(value, str(path))
    return None


def get(name: str, given: Any = None) -> Any:
    """A setting's value: `given` (an explicit argument) when it is not None, else the environment,
    else a .env file, else its default; what is found is parsed and checked."""
    setting = SETTINGS[name]
    found = Found(given, "argument") if given is not None else lookup(name)
    if found is None:
        return setting.default
    try:
        return setting.parse(found.value)
    except ValueError as exc:
        where = {"argument": "an argument", "environment": "the environment"}.get(found.source, found.source)
        raise CtxevalError(f"{name} must be {exc}, got {found.value!r} (from {where})") from None


def default(name: str) -> Any:
    return SETTINGS[name].default


# -- the README's table ----------------------------------------------------------------------------
def _shown_default(setting: Setting) -> str:
    if setting.shown_default is not None:
        return setting.shown_default
    if setting.default is None:
        return "—"
    if isinstance(setting.default, bool):
        return "1" if setting.default else "0"
    if isinstance(setting.default, float):
        return f"{setting.default:g}"
    return f"`{setting.default}`" if isinstance(setting.default, str) else str(setting.default)


def markdown_table() -> str:
    """The settings as the README's Markdown table (tests/test_settings.py keeps the two equal)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {_shown_default(s)} | {s.meaning} |" for s in SETTINGS.values()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
