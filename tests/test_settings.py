"""evaluator/settings.py: one table of settings, read from the environment, then `.env` files.

The bug this guards against: some CTXEVAL_* variables were read from `os.environ` only, so a
`.env` entry was silently ignored for them (CTXEVAL_PRICES, CTXEVAL_RUNS_DIR, ...)."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from evaluator import paths, settings
from evaluator.analysis.leaderboard import leaderboard_dir
from evaluator.errors import CtxevalError
from evaluator.models import pricing, tokens
from evaluator.models.settings import resolve_config
from evaluator.sandbox.staging import stage_root
from evaluator.tracing import phoenix_settings

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No setting in the environment; the working directory and the project root are empty temp dirs."""
    for name in settings.SETTINGS:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "cwd").mkdir()
    (tmp_path / "root").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(settings, "PROJECT_DOTENV", tmp_path / "root" / ".env")
    tokens.clear_caches()
    yield
    tokens.clear_caches()


def write_dotenv(folder: Path, **values: str) -> Path:
    path = folder / ".env"
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return path


def prices_file(folder: Path, name: str, input_price: float) -> str:
    path = folder / name
    path.write_text(json.dumps({"gpt-4o": {"input": input_price, "output": 1.0}}))
    return str(path)


# Each: the variable, a value for it made in a folder, and what the code using it then reports.
USERS: dict[str, tuple[Callable[[Path, str], str], Callable[[], Any], Callable[[str], Any]]] = {
    "CTXEVAL_PRICES": (lambda folder, tag: prices_file(folder, f"{tag}.json", 7.0 if tag == "env" else 3.0),
                       lambda: pricing.lookup("openai:gpt-4o").price.input,
                       lambda tag: 7.0 if tag == "env" else 3.0),
    "CTXEVAL_RUNS_DIR": (lambda folder, tag: str(folder / f"runs-{tag}"), paths.runs_dir,
                         lambda tag: None),
    "CTXEVAL_MAX_RETRIES": (lambda folder, tag: "7" if tag == "env" else "1",
                            lambda: resolve_config("openai", "gpt-4o", api_key="sk-x").max_retries,
                            lambda tag: 7 if tag == "env" else 1),
    "CTXEVAL_TOKENIZER": (lambda folder, tag: "estimate", lambda: tokens.tokenizer_for("openai:gpt-4").name,
                          lambda tag: tokens.ESTIMATE),
    "CTXEVAL_LEADERBOARD_DIR": (lambda folder, tag: str(folder / f"board-{tag}"), leaderboard_dir,
                                lambda tag: None),
    "CTXEVAL_MOUNT_ROOT": (lambda folder, tag: str(folder / f"mounts-{tag}"), stage_root, lambda tag: None),
}


def expected(name: str, value: str, tag: str) -> Any:
    wanted = USERS[name][2](tag)
    return Path(value) if wanted is None else wanted  # the folder settings: the folder named


@pytest.mark.parametrize("name", sorted(USERS))
def test_a_dotenv_entry_is_honoured_by_the_code_that_uses_it(name, tmp_path):
    make, use, _ = USERS[name]
    value = make(tmp_path, "dotenv")
    write_dotenv(tmp_path / "cwd", **{name: value})
    assert use() == expected(name, value, "dotenv")


@pytest.mark.parametrize("name", sorted(USERS))
def test_the_project_root_dotenv_counts_too(name, tmp_path):
    make, use, _ = USERS[name]
    value = make(tmp_path, "dotenv")
    write_dotenv(tmp_path / "root", **{name: value})
    assert use() == expected(name, value, "dotenv")


@pytest.mark.parametrize("name", ["CTXEVAL_PRICES", "CTXEVAL_RUNS_DIR", "CTXEVAL_MAX_RETRIES"])
def test_the_environment_wins_over_dotenv(name, tmp_path, monkeypatch):
    make, use, _ = USERS[name]
    write_dotenv(tmp_path / "cwd", **{name: make(tmp_path, "dotenv")})
    value = make(tmp_path, "env")
    monkeypatch.setenv(name, value)
    assert use() == expected(name, value, "env")


def test_the_working_directory_dotenv_wins_over_the_project_root(tmp_path):
    write_dotenv(tmp_path / "root", CTXEVAL_RUNS_DIR="/from/root", CTXEVAL_MAX_RETRIES="2")
    write_dotenv(tmp_path / "cwd", CTXEVAL_RUNS_DIR="/from/cwd")
    assert paths.runs_dir() == Path("/from/cwd") and settings.get("CTXEVAL_MAX_RETRIES") == 2


def test_an_empty_value_counts_as_unset(tmp_path, monkeypatch):
    write_dotenv(tmp_path / "cwd", CTXEVAL_MAX_RETRIES="3")
    monkeypatch.setenv("CTXEVAL_MAX_RETRIES", "")
    assert settings.get("CTXEVAL_MAX_RETRIES") == 3
    monkeypatch.setenv("CTXEVAL_RUNS_DIR", "")
    assert paths.runs_dir() == paths.DEFAULT_RUNS_DIR


def test_an_explicit_argument_wins_and_is_checked_too(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXEVAL_MAX_RETRIES", "5")
    assert resolve_config("openai", "gpt-4o", api_key="sk-x", max_retries=0).max_retries == 0
    with pytest.raises(CtxevalError, match=r"CTXEVAL_MAX_RETRIES must be .*-1.*an argument"):
        resolve_config("openai", "gpt-4o", api_key="sk-x", max_retries=-1)


def test_dotenv_values_stay_out_of_the_environment(tmp_path):
    import os
    write_dotenv(tmp_path / "cwd", CTXEVAL_RUNS_DIR="/from/dotenv")
    assert paths.runs_dir() == Path("/from/dotenv") and "CTXEVAL_RUNS_DIR" not in os.environ


BAD_VALUES = {"CTXEVAL_MAX_RETRIES": "-1", "CTXEVAL_MODEL_TIMEOUT": "soon", "CTXEVAL_MAX_CONCURRENT_REQUESTS": "0",
              "CTXEVAL_MAX_OUTPUT_TOKENS": "lots", "CTXEVAL_OPENAI_JSON_MODE": "yaml", "CTXEVAL_TOKENIZER": "bpe",
              "CTXEVAL_TIKTOKEN_DOWNLOAD": "maybe", "CTXEVAL_TIKTOKEN_TIMEOUT": "ten", "CTXEVAL_OTLP_TIMEOUT": "x"}


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_a_bad_value_names_the_variable_the_value_and_where_it_was_set(name, tmp_path, monkeypatch):
    dotenv = write_dotenv(tmp_path / "cwd", **{name: BAD_VALUES[name]})
    with pytest.raises(CtxevalError) as caught:
        settings.get(name)
    message = str(caught.value)
    assert name in message and repr(BAD_VALUES[name]) in message and str(dotenv) in message
    monkeypatch.setenv(name, BAD_VALUES[name])
    with pytest.raises(CtxevalError, match=f"{name}.*the environment"):
        settings.get(name)


def test_a_bad_value_surfaces_where_it_is_used(tmp_path):
    write_dotenv(tmp_path / "cwd", CTXEVAL_TOKENIZER="bpe", CTXEVAL_OTLP_TIMEOUT="soon")
    with pytest.raises(CtxevalError, match="CTXEVAL_TOKENIZER"):
        tokens.tokenizer_for("openai:gpt-4")
    with pytest.raises(CtxevalError, match="CTXEVAL_OTLP_TIMEOUT"):
        phoenix_settings("http://127.0.0.1:1")


def test_phoenix_settings_come_from_dotenv(tmp_path):
    assert phoenix_settings() is None
    write_dotenv(tmp_path / "cwd", PHOENIX_COLLECTOR_ENDPOINT="http://phoenix:6006", CTXEVAL_OTLP_TIMEOUT="2.5")
    found = phoenix_settings()
    assert found.endpoint == "http://phoenix:6006/v1/traces" and found.export_timeout_seconds == 2.5
    assert found.project_name == "ctxeval"


def test_an_unknown_name_is_a_programming_error():
    with pytest.raises(KeyError):
        settings.get("CTXEVAL_NO_SUCH_SETTING")


# -- the README ------------------------------------------------------------------------------------
def test_the_readme_table_is_the_settings_table():
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", readme, re.S)
    assert block, "README.md lost its settings table markers"
    assert block.group(1) == settings.markdown_table(), \
        "README's settings table is stale: paste `python -m evaluator.settings` between its markers"


def test_every_setting_has_a_one_line_meaning():
    for setting in settings.SETTINGS.values():
        assert setting.meaning and "\n" not in setting.meaning and "|" not in setting.meaning, setting.name


def test_importing_settings_is_cheap():
    code = "import sys, evaluator.settings; print(sorted(n for n in ('dotenv', 'yaml', 'evaluator.models') if n in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT)
    assert out.stdout.strip() == "[]"


# -- nobody else reads a host setting from os.environ --------------------------------------------------
def _environ_keys(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, variable) of every os.environ / os.getenv read whose key is a string literal or a
    module-level constant bound to one."""
    constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                 for target in node.targets if isinstance(target, ast.Name)}

    def key(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return constants.get(node.id) if isinstance(node, ast.Name) else None

    def is_environ(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            found.append((node.lineno, key(node.slice)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args and (
                (node.func.attr in ("get", "pop", "setdefault") and is_environ(node.func.value))
                or node.func.attr == "getenv"):
            found.append((node.lineno, key(node.args[0])))
        elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
            found.append((node.lineno, key(node.left)))
    return [(line, name) for line, name in found if name]


def _modules() -> list[Path]:
    return sorted(p for folder in ("evaluator", "policies") for p in (PROJECT / folder).rglob("*.py"))


def test_no_module_but_settings_reads_a_host_setting_from_os_environ():
    offenders = []
    for path in _modules():
        if path == PROJECT / "evaluator" / "settings.py":
            continue
        for line, name in _environ_keys(ast.parse(path.read_text(encoding="utf-8"))):
            if name.startswith("CTXEVAL_") and name not in settings.PROTOCOL_VARIABLES or name in settings.SETTINGS:
                offenders.append(f"{path.relative_to(PROJECT)}:{line} reads {name}")
    assert not offenders, "read these through evaluator.settings.get():\n" + "\n".join(offenders)


def test_every_ctxeval_variable_in_the_code_is_a_setting_or_sandbox_protocol():
    unknown = set()
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    re.fullmatch(r"CTXEVAL_[A-Z0-9_]+", node.value):
                unknown.add(node.value)
    assert unknown - set(settings.SETTINGS) - set(settings.PROTOCOL_VARIABLES) == set()


def test_the_scan_sees_an_environ_read():
    tree = ast.parse("import os\nNAME = 'CTXEVAL_X'\na = os.environ.get(NAME)\nb = os.environ['CTXEVAL_Y']\n"
                     "c = 'CTXEVAL_Z' in os.environ\nd = os.getenv('CTXEVAL_W')\n")
    assert {name for _, name in _environ_keys(tree)} == {"CTXEVAL_X", "CTXEVAL_Y", "CTXEVAL_Z", "CTXEVAL_W"}
