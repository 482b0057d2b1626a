"""Every user-supplied input, fuzzed with Hypothesis: bad input gets a clear error and loses nothing.

A malformed bundle manifest, policy file, run file or actions file ends in an error naming the file
and a JSON path ("$..."); a malformed grade, output, result file or submission is recorded as
invalid with its reasons. Never anything else: no KeyError, TypeError, RecursionError, leaked YAML
error or traceback, and nothing accepted that breaks later (NaN limits, YAML dates, 3.0 as a count).

The mutations start from the real inputs (bundles/toy and bundles/nomad, the presets, the README's
run and actions files, a hand-built submission): keys deleted, values replaced with wrong types,
huge, negative, non-finite, unicode and YAML-only values, unknown keys added, bytes injected, the
text truncated, alias bombs, deep nesting, duplicate keys, other top levels, empty files, binary
garbage. Examples are derandomized (the same ones on every run) and no Docker engine is needed.
Each @example is a bug these tests found, kept as a regression (except the marked positive controls).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from evaluator.agents.fixed import ScriptedActionsAgent
from evaluator.analysis.loading import bundle_targets, group_by_arm, load_run
from evaluator.analysis.run_cells import RUN_FILE
from evaluator.analysis.submission import MIN_SEEDS, SCHEMA_VERSION, SUBMISSION_FILE, artefact_digest, compute_totals
from evaluator.bundles import Bundle, load_bundle
from evaluator.bundles.grading_helper import grader_hash
from evaluator.cli import app
from evaluator.episode.context import check_output
from evaluator.episode.grading import GradeOutcome, parse_grade
from evaluator.errors import CtxevalError, ValidationFailed
from evaluator.hashing import hash_tree
from evaluator.matrix import RunMatrix
from evaluator.paths import BUNDLES_DIR
from evaluator.regrade import verify_submission
from policies.config import PRESETS_DIR, POLICIES, PolicyConfig, PresetError, resolve_policy


pytestmark = pytest.mark.timeout(600)  # an alias bomb that gets through hangs instead of failing


def fuzz(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# "$", ".key" (letters, digits, _ $ -), "[3]" or '["any key"]' (JSON-quoted)
JSON_PATH = re.compile(r'\$(?:\.[A-Za-z0-9_$-]+|\[\d+\]|\["(?:[^"\\\n]|\\.)*"\])*')


def assert_violations(exc: ValidationFailed, file_ok: Callable[[str], bool]) -> None:
    """Every violation names an expected file and a well-formed JSON path, with a message."""
    assert exc.violations, "ValidationFailed without violations"
    for v in exc.violations:
        assert file_ok(v.file), f"unexpected file {v.file!r} in {v}"
        assert JSON_PATH.fullmatch(v.json_path), f"not a JSON path: {v.json_path!r} ({v})"
        assert v.message.strip(), v
    assert str(exc).startswith(f"{exc.violations[0].file}: $")


# -- values and mutations ------------------------------------------------------------------------
WEIRD_STRINGS = ["", " ", "\t\n", "../../etc/passwd", "/etc/passwd", "a\x00b", "x" * 5000, "\ud800", "é\u202e",
                 "~nosuchuser/x", "-1", "1e400", "null", "[", "{a: b", "*alias", "&anchor", "a(b)c", "k: v",
                 "task.md", "starter", "tools", "grader", "README.md", "output.schema.json", "Dockerfile",
                 "data/prepare.py", "bundle.yaml"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(),
    st.sampled_from([-1, 0, 1.0, 20.0, 10 ** 400, -(10 ** 400), 2 ** 63, 2 ** 64, 1.7e308, -0.0]),
    st.text(max_size=20), st.sampled_from(WEIRD_STRINGS),
)
YAML_ONLY = st.one_of(st.dates(), st.binary(max_size=6), st.sets(st.integers(0, 9), max_size=3))
KEYS = st.one_of(st.text(max_size=10), st.sampled_from(["$ref", "type", "properties", "a.b", "a(b", "x\ny", "é"]),
                 st.integers(-3, 3), st.none(), st.booleans())


def values(keys: st.SearchStrategy = KEYS, scalars: st.SearchStrategy = SCALARS) -> st.SearchStrategy:
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(keys, inner, max_size=3), max_leaves=6)


YAML_VALUES = values(scalars=SCALARS | YAML_ONLY)
JSON_VALUES = values(keys=st.text(max_size=10) | st.sampled_from(["$ref", "a.b", "x\ny", "é"]))


def locations(document: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a document (shared YAML anchors are visited once per place they appear)."""
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += locations(value, prefix + (key,))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            found += locations(value, prefix + (i,))
    return found


@st.composite
def mutated(draw, document: Any, junk: st.SearchStrategy) -> Any:
    """The document with 1-3 keys deleted, values replaced or keys added."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(locations(document)))
        action = draw(st.sampled_from(["delete", "replace", "add"]))
        if not where:
            if action == "replace":
                document = draw(junk)
            elif isinstance(document, dict):
                document[draw(KEYS if junk is YAML_VALUES else st.text(max_size=10))] = draw(junk)
            continue
        parent = document
        for part in where[:-1]:
            parent = parent[part]
        last = where[-1]
        if action == "delete":
            del parent[last]
        elif action == "replace":
            parent[last] = draw(junk)
        elif isinstance(parent[last], dict):
            parent[last][draw(KEYS if junk is YAML_VALUES else st.text(max_size=10))] = draw(junk)
        elif isinstance(parent[last], list):
            parent[last].append(draw(junk))
        else:
            parent[last] = [parent[last], draw(junk)]
    return document


EXTREME_NUMBERS = st.one_of(st.integers(-(2 ** 63), 2 ** 63 - 1), st.floats(allow_nan=False, allow_infinity=False),
                            st.sampled_from([0, -1, 1, 2 ** 63 - 1, 0.0, 5e-324, 1.7e308, -1.7e308]))


@st.composite
def numbers_tweaked(draw, document: Any) -> Any:
    """The document with 1-3 of its numbers replaced by extreme ones: it mostly stays schema-valid,
    so what runs after the schema (arithmetic, totals, comparisons) gets the odd values."""
    document = copy.deepcopy(document)
    numeric = [where for where in locations(document) if where and type(_at(document, where)) in (int, float)]
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(numeric))
        _at(document, where[:-1])[where[-1]] = draw(EXTREME_NUMBERS)
    return document


def _at(document: Any, where: tuple) -> Any:
    for part in where:
        document = document[part]
    return document


def bomb(levels: int = 9) -> str:
    """A billion-laughs alias bomb as one flow sequence: 9 ** levels strings once expanded."""
    parts = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    parts += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


INJECTIONS = st.one_of(
    st.sampled_from([bomb(), "&a [*a]", "&b {x: *b}", "!!python/object/apply:os.system ['true']", "!!set {a, b}",
                     "!!timestamp 2001-12-14", "!!omap [a: 1]", "!!binary aGVsbG8=", "!custom x", "!!float nan",
                     ".inf", "-.inf", ".nan", "0x7fffffffffffffffff", "1" + "0" * 400, "2001-12-14", "~", "[]", "{}",
                     "*undefined", "&", "'unterminated", '"\\ud800"', '"\\x00"', "|\n  block", "? [a, b]\n: c"]),
    st.integers(1, 400).map(lambda n: "[" * n + "]" * n),
    st.integers(300, 3000).map(lambda n: "[" * n),
    st.integers(30, 200).map(lambda n: "{a: " * n + "1" + "}" * n),
    st.text(max_size=30),
)
TOP_LEVELS = [b"", b"---\n", b"...\n", b"[]", b"- a\n- b\n", b"42", b"null", b"~", b"'x'", b"!!binary aGVsbG8=",
              b"--- a\n--- b\n", b"%YAML 1.1\n---\n{}", b"%FOO\n", b"\xef\xbb\xbf", b"\x00", b"\t", b"key: [",
              b"&a [*a]", bomb().encode()]
KEY_LINE = re.compile(r"^( *)(- )?([A-Za-z_][A-Za-z0-9_]*):(.*)$", re.M)


@st.composite
def corrupted(draw, text: str) -> bytes:
    """The document's text, corrupted at the text level."""
    data = text.encode()
    kind = draw(st.sampled_from(["truncate", "insert", "garbage", "duplicate", "inject", "top_level", "encoding"]))
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data)))]
    if kind == "insert":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=12)) + data[at:]
    if kind == "garbage":
        return draw(st.binary(max_size=300))
    if kind == "top_level":
        return draw(st.sampled_from(TOP_LEVELS))
    if kind == "encoding":
        return text.encode(draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "cp500"])), "replace")
    lines = list(KEY_LINE.finditer(text))
    line = draw(st.sampled_from(lines))
    indent, dash, key, _ = line.groups()
    if kind == "duplicate":  # the same key again in the same mapping, right after its first line
        again = f"\n{indent}{'  ' if dash else ''}{key}: {draw(INJECTIONS)}"
        return (text[:line.end()] + again + text[line.end():]).encode("utf-8", "surrogatepass")
    replaced = f"{indent}{dash or ''}{key}: {draw(INJECTIONS)}"
    return (text[:line.start()] + replaced + text[line.end():]).encode("utf-8", "surrogatepass")


def dump_yaml(document: Any, unicode: bool) -> bytes:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=unicode).encode("utf-8", "surrogatepass")


def yaml_inputs(texts: dict[str, str]) -> st.SearchStrategy:
    """(name, bytes): a document from `texts`, mutated as data or corrupted as text."""
    documents = {name: yaml.safe_load(text) for name, text in texts.items()}
    as_data = st.sampled_from(sorted(texts)).flatmap(
        lambda name: st.tuples(st.just(name), st.builds(dump_yaml, mutated(documents[name], YAML_VALUES),
                                                        st.booleans())))
    numbers = st.sampled_from(sorted(texts)).flatmap(
        lambda name: st.tuples(st.just(name), st.builds(dump_yaml, numbers_tweaked(documents[name]), st.just(True))))
    as_text = st.sampled_from(sorted(texts)).flatmap(lambda name: st.tuples(st.just(name), corrupted(texts[name])))
    return as_data | as_text | numbers


def set_line(text: str, key: str, value: str, nth: int = 0) -> bytes:
    """`text` with the nth line `key: ...` set to `key: value` (for the regression examples)."""
    matches = [m for m in KEY_LINE.finditer(text) if m.group(3) == key]
    m = matches[nth]
    indent, dash = m.group(1), m.group(2) or ""
    return (text[:m.start()] + f"{indent}{dash}{key}: {value}" + text[m.end():]).encode("utf-8", "surrogatepass")


# -- 1. bundle manifests ---------------------------------------------------------------------------
MANIFESTS = {name: (BUNDLES_DIR / name / "bundle.yaml").read_text() for name in ("toy", "nomad")}
TOY = MANIFESTS["toy"]
ODD_KEYS = set_line(TOY, "context", '[Dockerfile]\n  build_args: {"x\\ny": 1, "\\ud800": 2}')  # keys in a JSON path


@pytest.fixture(scope="module")
def bundle_copies(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {name: Path(shutil.copytree(BUNDLES_DIR / name, root / name,
                                       ignore=shutil.ignore_patterns("__pycache__"))) for name in MANIFESTS}


def duplicate_keys(data: bytes) -> bool:
    """The test's own oracle: does the YAML text give a key twice in one mapping?"""
    try:
        node = yaml.compose(data.decode("utf-8"), Loader=yaml.SafeLoader)
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return False
    stack, seen = [node], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys = [(k.tag, k.value) for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
            if len(keys) != len(set(keys)):
                return True
            stack += [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return False


def assert_usable(bundle: Bundle) -> None:
    """A loaded bundle must work downstream: plain JSON, schemas that compile, finite numbers."""
    assert json.loads(json.dumps(bundle.raw, allow_nan=False)) == bundle.raw  # no int keys, dates, sets...
    schemas = [t.parameters for t in bundle.tools] + [bundle.output_schema]
    schemas += [bundle.controller.proposal_schema] if bundle.controller else []
    for schema in schemas:
        Draft202012Validator.check_schema(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for field in dataclasses.fields(bundle.limits):
        value = getattr(bundle.limits, field.name)
        assert value is None or (type(value) in (int, float) and math.isfinite(value)), (field.name, value)
        if field.type in ("int", "int | None"):
            assert value is None or type(value) is int, (field.name, value)
    assert math.isfinite(bundle.grader_timeout_seconds)
    for tool in bundle.tools:
        assert math.isfinite(float(tool.timeout_seconds))
    goal = bundle.target.target_score()
    assert goal is None or isinstance(goal, float | int)
    bundle.target.meets_target(0.5)


def load_outcome(folder: Path) -> str:
    """load_bundle on the folder: a usable Bundle or ValidationFailed naming the manifest; else it raises."""
    manifest = folder.resolve() / "bundle.yaml"
    try:
        bundle = load_bundle(folder)
    except ValidationFailed as exc:  # the manifest, or a file it names (the output schema)
        assert_violations(exc, lambda f: f in (str(manifest), str(folder / "bundle.yaml"))
                          or Path(f).parent.resolve().is_relative_to(folder.resolve()))
        return "invalid"
    except CtxevalError as exc:
        assert str(manifest) in str(exc), str(exc)
        return "error"
    assert_usable(bundle)
    return "loaded"


def test_the_unmutated_manifests_load(bundle_copies):
    """The positive control: the copies load, so a rejection below is the mutation's doing."""
    for name, folder in bundle_copies.items():
        (folder / "bundle.yaml").write_text(MANIFESTS[name])
        assert load_outcome(folder) == "loaded"


@fuzz(200)
@given(case=yaml_inputs(MANIFESTS))
@example(case=("toy", b"\xff\xfe\x00binary garbage\x80"))  # UnicodeDecodeError
@example(case=("toy", b"a: " + b"[" * 3000 + b"]" * 3000))  # RecursionError in the YAML reader
@example(case=("toy", set_line(TOY, "timeout_seconds", "1" + "0" * 400, 1)))  # OverflowError: float(10**400)
@example(case=("toy", set_line(TOY, "baseline", "1" + "0" * 400)))  # OverflowError in target_score()
@example(case=("toy", set_line(TOY, "cpus", ".nan")))  # NaN passes exclusiveMinimum: 0
@example(case=("toy", set_line(TOY, "wall_seconds", ".inf")))  # an endless wall clock, not JSON
@example(case=("toy", set_line(TOY, "max_steps", "20.0")))  # 20.0 "is an integer" to JSON Schema
@example(case=("toy", set_line(TOY, "C", '{type: number, default: 2020-01-01}')))  # a YAML date: not JSON
@example(case=("toy", set_line(TOY, "C", "{type: number, default: !!set {a, b}}")))  # a YAML set: not JSON
@example(case=("toy", set_line(TOY, "C", "{1: 2, type: number}")))  # an integer key
@example(case=("toy", set_line(TOY, "C", '{type: string, pattern: "["}')))  # a regex that does not compile
@example(case=("toy", set_line(TOY, "C", "&c {type: object, properties: {x: *c}}")))  # a cycle: RecursionError
@example(case=("toy", set_line(TOY, "title", bomb())))  # hangs: the error message is the repr() of 9**9 strings
@example(case=("toy", TOY.encode() + b"\nid: other\n"))  # a duplicate key, silently the last one
@example(case=("toy", set_line(TOY, "task", "x" * 5000)))  # OSError: file name too long
@example(case=("toy", set_line(TOY, "task", '"a\\0b"')))  # ValueError: embedded null byte
@example(case=("toy", ODD_KEYS))  # a JSON path with a newline in it: one FAIL line printed as two
def test_mutated_manifests_load_or_name_the_file_and_path(bundle_copies, case):
    name, data = case
    folder = bundle_copies[name]
    (folder / "bundle.yaml").write_bytes(data)
    outcome = load_outcome(folder)
    event(outcome)
    assert not (outcome == "loaded" and duplicate_keys(data)), "a key given twice: one value silently lost"


def test_unknown_fields_are_named_whatever_their_name(bundle_copies, tmp_path):
    """The message names the unknown keys themselves (it was cut at the last "(" of jsonschema's text)."""
    folder = Path(shutil.copytree(bundle_copies["toy"], tmp_path / "toy"))
    (folder / "bundle.yaml").write_text(TOY + '"a(b)": 1\ncolour: blue\n')
    with pytest.raises(ValidationFailed) as caught:
        load_bundle(folder)
    assert [(v.json_path, v.message) for v in caught.value.violations] == [("$", "unknown field(s): 'a(b)', 'colour'")]
    policy = tmp_path / "p.yaml"
    policy.write_text('schema_version: 1\nname: p\npolicy: full_history\n"x (y": 1\n')
    with pytest.raises(PresetError) as preset:
        resolve_policy(policy)
    assert preset.value.problems == [("$", "unknown field(s): 'x (y'")]


def test_unreadable_manifests_name_the_file(bundle_copies, tmp_path):
    folder = Path(shutil.copytree(bundle_copies["toy"], tmp_path / "toy"))
    manifest = folder / "bundle.yaml"
    manifest.unlink()
    manifest.mkdir()  # IsADirectoryError
    assert load_outcome(folder) == "invalid"
    manifest.rmdir()
    manifest.symlink_to(manifest)  # a symlink loop
    assert load_outcome(folder) == "invalid"
    manifest.unlink()
    manifest.write_text(TOY.replace("task: task.md", "task: loop.md"))
    (folder / "loop.md").symlink_to(folder / "loop.md")
    with pytest.raises(ValidationFailed) as caught:
        load_bundle(folder)
    assert [(v.file, v.json_path) for v in caught.value.violations] == [(str(manifest.resolve()), "$.task")]


@fuzz(40)
@given(path=st.text(max_size=20) | st.sampled_from(["a\x00b", "x" * 5000, "~nosuchuser", "/", ".", ".."]))
def test_any_bundle_path_is_a_clear_error(tmp_path_factory, path):
    base = tmp_path_factory.getbasetemp() / "no-bundles-here"
    with pytest.raises(ValidationFailed) as caught:
        load_bundle(base / path)
    assert_violations(caught.value, lambda f: True)


# -- 2. the CLI ------------------------------------------------------------------------------------
FAIL_LINE = re.compile(r"FAIL (?P<file>.+?): (?P<path>\$\S*): \S")


@fuzz(40)
@given(case=yaml_inputs({"toy": TOY}))
@example(case=("toy", b"\xff\xfe\x00binary garbage\x80"))
@example(case=("toy", ODD_KEYS))
def test_validate_prints_fail_lines_with_file_and_path(bundle_copies, case):
    _, data = case
    folder = bundle_copies["toy"]
    manifest = folder / "bundle.yaml"
    manifest.write_bytes(data)
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 0:
        assert result.stdout.startswith("ok  toy "), result.output
        return
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert lines, result.output
    for line in lines:
        match = FAIL_LINE.match(line)
        assert match, f"not a FAIL line with file and JSON path: {line!r}"
        assert match["file"] == str(manifest.resolve()) or match["file"].startswith(str(folder.resolve()))
        assert JSON_PATH.fullmatch(match["path"]), line


# -- 3. policy files, run files, actions files ---------------------------------------------------------
def _policy_files() -> dict[str, str]:
    texts = {path.stem: path.read_text() for path in sorted(PRESETS_DIR.glob("*.yaml"))}
    for name, cls in POLICIES.items():
        texts[name] = yaml.safe_dump({"schema_version": 1, "name": name, "description": cls.description,
                                      "policy": name, "params": cls.default_params(), "budget_tokens": 8000,
                                      "clarification": "neutral"}, sort_keys=False)
    return texts


POLICY_FILES = _policy_files()
SCORERS = st.tuples(st.sampled_from(["", "..", ".x", "\x00", "no_such_module_zz", "os", "os.path", "json"]),
                    st.text(max_size=8)).map(":".join)
PARAM_VALUES = st.one_of(SCALARS, SCORERS)


@st.composite
def policy_params(draw) -> tuple[str, bytes]:
    """A policy file whose params are fuzzed: known and unknown names, any scalar, scorer strings."""
    name = draw(st.sampled_from(sorted(POLICIES)))
    known = sorted(POLICIES[name].default_params())
    keys = st.sampled_from(known) | st.text(max_size=8) if known else st.text(max_size=8)
    params = draw(st.dictionaries(keys, PARAM_VALUES, max_size=3))
    return name, yaml.safe_dump({"schema_version": 1, "name": "fuzzed", "policy": name, "params": params},
                                allow_unicode=True).encode("utf-8", "surrogatepass")


def policy_outcome(path: Path) -> str:
    try:
        config = resolve_policy(path)
    except PresetError as exc:  # a ValueError whose every line is `file: $.path: message`
        assert exc.file == str(path) and exc.problems, str(exc)
        for json_path, message in exc.problems:
            assert JSON_PATH.fullmatch(json_path), (json_path, message)
            assert message.strip()
        assert str(exc).startswith(f"{path}: $")
        return "invalid"
    assert isinstance(config, PolicyConfig)
    assert json.loads(json.dumps(config.describe(), allow_nan=False)) == config.describe()  # what run.json keeps
    assert config.budget_tokens is None or type(config.budget_tokens) is int
    config.create()
    return "loaded"


@fuzz(120)
@given(case=yaml_inputs(POLICY_FILES) | policy_params())
@example(case=("short_context", b"\xff\xfe\x00"))  # UnicodeDecodeError: a ValueError naming no file
@example(case=("short_context", b"a: " + b"[" * 3000))  # RecursionError
@example(case=("short_context", POLICY_FILES["short_context"].encode() + b"\nname: other\n"))  # duplicate key
@example(case=("retrieval", b"schema_version: 1\nname: x\npolicy: retrieval\nparams: {scorer: ':f'}\n"))  # ValueError
@example(case=("retrieval", b"schema_version: 1\nname: x\npolicy: retrieval\nparams: {scorer: '..:f'}\n"))  # TypeError
@example(case=("full_history", b"schema_version: 1\nname: x\npolicy: full_history\nbudget_tokens: 4000.0\n"))
# ValueError: YAML's int() of a 5001-digit integer (Python refuses > 4300 digits)
@example(case=("full_history", b"schema_version: 1\nname: x\npolicy: full_history\nbudget_tokens: 1" + b"0" * 5000))
def test_policy_files_load_or_name_the_file_and_path(tmp_path_factory, case):
    _, data = case
    path = tmp_path_factory.getbasetemp() / "fuzzed-policy.yaml"
    path.write_bytes(data)
    outcome = policy_outcome(path)
    event(outcome)
    assert not (outcome == "loaded" and duplicate_keys(data)), "a key given twice: a value lost"


@fuzz(60)
@given(spec=st.text(max_size=30) | st.sampled_from(["x" * 5000, "~nosuchuser/p.yaml", "a\x00b.yaml", "/", ".",
                                                     "short_context", "full_history", "none.yaml"]))
@example(spec="x" * 5000)  # OSError: file name too long, from Path.is_file()
@example(spec="~nosuchuser/p.yaml")  # RuntimeError from Path.expanduser()
def test_any_policy_spec_resolves_or_says_why(spec):
    try:
        config = resolve_policy(spec)
    except ValueError as exc:
        assert repr(spec) in str(exc) or isinstance(exc, PresetError), str(exc)
        return
    assert isinstance(config, PolicyConfig)


RUN_FILES = {
    "sweep": yaml.safe_dump({"schema_version": 1, "bundles": ["toy", "nomad"],
                             "policies": ["short_context", "long_context"], "modes": ["controller", "agentic"],
                             "models": ["scripted:hill_climb", "openai:gpt-4o"], "seeds": 3, "max_parallel": 2,
                             "backend": "local", "runtime": "runc", "base_url": "http://localhost:8000/v1",
                             "stop_on_valid_output": False,
                             "budget": {"max_steps": 5, "max_tokens": 200000, "max_cost_usd": 2.5,
                                        "wall_seconds": 900}}, sort_keys=False),
    "actions": yaml.safe_dump({"bundles": ["toy"], "agent": "actions", "actions": "actions.yaml",
                               "seeds": [0, 4, 7]}, sort_keys=False),
}


def run_file_outcome(path: Path) -> str:
    try:
        matrix = RunMatrix.from_file(path)
    except ValidationFailed as exc:
        assert_violations(exc, lambda f: f == str(path))
        return "invalid"
    except CtxevalError as exc:
        assert str(path) in str(exc), str(exc)
        return "error"
    json.dumps(matrix.as_record(), allow_nan=False)
    json.dumps(matrix.options, allow_nan=False)
    assert matrix.size >= 1 and all(type(seed) is int for seed in matrix.seeds)
    assert "max_parallel" not in matrix.options or type(matrix.options["max_parallel"]) is int
    return "loaded"


@fuzz(100)
@given(case=yaml_inputs(RUN_FILES))
@example(case=("sweep", b"\xff\xfe\x00"))  # UnicodeDecodeError: a ValueError naming no file
@example(case=("sweep", b"bundles: " + b"[" * 3000))  # RecursionError
@example(case=("sweep", b"bundles: [toy]\nseeds: 3.0\n"))  # TypeError: 'float' object is not iterable
@example(case=("sweep", b"bundles: [toy]\nseeds: [1.0]\nmax_parallel: 2.0\n"))  # episode ids ...-s1.0
@example(case=("sweep", b"bundles: [toy]\nbundles: [nomad]\n"))  # duplicate key
@example(case=("sweep", b"bundles: [toy]\nbudget: {max_cost_usd: .nan}\n"))  # NaN passes minimum: 0
def test_run_files_load_or_name_the_file_and_path(tmp_path_factory, case):
    _, data = case
    path = tmp_path_factory.getbasetemp() / "fuzzed-run.yaml"
    path.write_bytes(data)
    outcome = run_file_outcome(path)
    event(outcome)
    assert not (outcome == "loaded" and duplicate_keys(data)), "a key given twice: a value lost"


ACTIONS = {"readme": """schema_version: 1
description: the README's example
actions:
  - exec: "python3 train.py"
    timeout: 60
  - write_file: {path: config.json, content: '{"model": "random_forest"}'}
  - tool: train_and_evaluate
    args: {config: {model: random_forest, n_estimators: 200}}
  - read_file: metrics.json
  - submit: {}
"""}


@fuzz(80)
@given(case=yaml_inputs(ACTIONS))
@example(case=("readme", b"\xff\xfe\x00"))  # UnicodeDecodeError: a ValueError naming no file
@example(case=("readme", b"actions: " + b"[" * 3000))  # RecursionError
@example(case=("readme", b"schema_version: 1\nactions: []\nactions: [{exec: rm}]\n"))  # duplicate key
@example(case=("readme", b"schema_version: 1\nactions: [{exec: x, timeout: .inf}]\n"))  # an endless timeout
def test_actions_files_load_or_name_the_file_and_path(tmp_path_factory, case):
    _, data = case
    path = tmp_path_factory.getbasetemp() / "fuzzed-actions.yaml"
    path.write_bytes(data)
    try:
        agent = ScriptedActionsAgent(path)
    except ValidationFailed as exc:
        assert_violations(exc, lambda f: f == str(path))
        return
    except CtxevalError as exc:
        assert str(path) in str(exc), str(exc)
        return
    json.dumps(agent.actions, allow_nan=False)
    assert json.dumps(agent.describe())
    assert not duplicate_keys(data), "a key given twice: one value silently lost"


# -- 4. outputs: grades, the agent's output, result files, submissions ------------------------------------
GOOD_GRADE = {"schema_version": 1, "valid": True, "score": 0.9, "metric": "accuracy", "reason": None,
              "checks": [{"name": "rows", "passed": True, "reason": None}], "details": {"medal": "gold"}}
JSON_TEXTS = st.one_of(
    st.text(max_size=50),
    st.builds(lambda v: json.dumps(v), JSON_VALUES),
    st.builds(lambda d: json.dumps(d), mutated(GOOD_GRADE, JSON_VALUES)),
    st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1" + "0" * 5000, '{"a": 1, "a": 2}', "\ud800", '"\\ud800"',
                     "\x00", "", " ", "null", "[]"]),
)


def assert_grade_outcome(outcome: GradeOutcome) -> None:
    assert isinstance(outcome, GradeOutcome)
    assert all(isinstance(e, str) and e.startswith("grade.json") for e in outcome.errors), outcome.errors
    if outcome.valid:
        assert not outcome.errors and type(outcome.score) in (int, float) and math.isfinite(outcome.score)
        json.dumps(outcome.grade, allow_nan=False)
    else:
        assert outcome.score is None
        assert outcome.errors or (outcome.grade is not None and outcome.grade.get("valid") is False)


@fuzz(200)
@given(text=JSON_TEXTS)
@example(text=json.dumps(GOOD_GRADE))  # the positive control
@example(text="[" * 100_000)  # RecursionError from json.loads
@example(text="1" * 5000)  # ValueError: Python refuses integers of more than 4300 digits
@example(text='{"schema_version": 1, "valid": true, "score": NaN, "metric": "m"}')  # a valid NaN score
@example(text='{"schema_version": 1, "valid": true, "score": Infinity, "metric": "m"}')
@example(text='{"schema_version": 1, "valid": true, "score": 1' + "0" * 400 + ', "metric": "m"}')  # float() fails
def test_parse_grade_never_raises(text):
    outcome = parse_grade(text)
    assert_grade_outcome(outcome)
    if text.strip() == json.dumps(GOOD_GRADE):
        assert outcome.valid


@pytest.fixture(scope="module")
def toy_bundle_loaded() -> Bundle:
    return load_bundle(BUNDLES_DIR / "toy")


GOOD_OUTPUT = {"metric": "accuracy", "cv_accuracy": 0.88, "config": {"model": "random_forest"},
               "predictions": "predictions.csv"}


@fuzz(150)
@given(text=JSON_TEXTS | st.builds(json.dumps, mutated(GOOD_OUTPUT, JSON_VALUES)) | st.none())
@example(text="[" * 100_000)  # RecursionError from json.loads
@example(text=json.dumps(GOOD_OUTPUT))  # the positive control
@example(text=json.dumps({**GOOD_OUTPUT, "cv_accuracy": float("nan")}))  # valid: NaN passes every number check
def test_check_output_records_invalid_with_reasons(toy_bundle_loaded, text):
    record = check_output(toy_bundle_loaded, text)
    assert set(record) == {"path", "present", "valid", "errors"}
    assert record["path"] == toy_bundle_loaded.output_path and record["present"] is (text is not None)
    assert isinstance(record["valid"], bool) and all(isinstance(e, str) for e in record["errors"])
    assert record["valid"] is not bool(record["errors"]), record
    assert all(e.startswith(record["path"]) for e in record["errors"]), record["errors"]
    json.dumps(record, allow_nan=False)
    if text == json.dumps(GOOD_OUTPUT):
        assert record["valid"], record  # the positive control
    if record["valid"]:  # strict JSON: no NaN, no Infinity
        json.loads(text, parse_constant=lambda name: pytest.fail(f"a valid output holds {name}"))


GOOD_RESULT = {
    "schema_version": 1, "episode_id": "toy-controller-full_history-scripted_hill_climb-s0", "run_id": "fuzz",
    "bundle": {"id": "toy", "version": "1.0.0", "bundle_hash": "0" * 64, "grader_hash": "1" * 64, "image": None,
               "image_hash": None, "metric": "accuracy", "direction": "maximize"},
    "agent": {"kind": "controller", "mode": "controller", "model": "scripted:hill_climb",
              "policy": {"name": "full_history"}},
    "seed": 0, "sandbox": {"backend": "local", "isolated": False}, "status": "completed", "stop_reason": "submitted",
    "error": None, "success": True, "score": 0.9, "best_score": 0.9, "baseline": 0.788,
    "output": {"path": "metrics.json", "present": True, "valid": True, "errors": []},
    "grade": GOOD_GRADE, "grade_errors": [], "outcomes": {"ok": 3},
    "metrics": {"steps": 3, "llm_calls": 3, "prompt_tokens": 100, "completion_tokens": 20, "cached_tokens": 0,
                "summarizer_tokens": 0, "cost_usd": 0.0, "wall_seconds": 1.5, "model_seconds": 0.1,
                "sandbox_seconds": 1.2, "context_tokens": [10, 20, 30], "iterations": []},
    "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:00:02+00:00",
}
RESULT_TEXTS = st.one_of(
    st.builds(lambda d: json.dumps(d), mutated(GOOD_RESULT, JSON_VALUES)),
    st.builds(lambda d: json.dumps(d), numbers_tweaked(GOOD_RESULT)),
    st.integers(0, len(json.dumps(GOOD_RESULT))).map(lambda n: json.dumps(GOOD_RESULT)[:n]),  # torn writes
    st.binary(max_size=100),
    JSON_TEXTS,
)


@fuzz(100)
@given(files=st.lists(RESULT_TEXTS, min_size=1, max_size=3))
@example(files=[b"\xff\xfe\x00"])  # UnicodeDecodeError
@example(files=["[" * 100_000])  # RecursionError
@example(files=[json.dumps({**GOOD_RESULT, "agent": {**GOOD_RESULT["agent"], "policy": {"name": 5}}}),
                json.dumps({**GOOD_RESULT, "episode_id": "other"})])  # sorting arms: int < str
@example(files=[json.dumps({**GOOD_RESULT, "bundle": {**GOOD_RESULT["bundle"], "id": "a\x00b", "direction": "-"}})
                .replace(', "direction": "-"', "")])  # ValueError: embedded null byte, in load_bundle(bundles/<id>)
def test_load_run_lists_bad_result_files_as_invalid(tmp_path_factory, files):
    run = tmp_path_factory.mktemp("run")
    (run / "run.json").write_text(json.dumps({"run_id": "fuzz"}))
    paths = []
    for i, content in enumerate([json.dumps(GOOD_RESULT)] + files):
        path = run / "episodes" / f"e{i}" / "result.json"
        path.parent.mkdir(parents=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
        paths.append(path)
    loaded = load_run(run)
    assert len(loaded.results) + len(loaded.invalid) == len(paths)
    assert loaded.results, "the valid result was lost"
    for reason in loaded.invalid:
        assert any(reason.startswith(f"{path}: ") for path in paths), reason
    group_by_arm(loaded.results)
    try:
        bundle_targets(loaded.results)
    except CtxevalError as exc:  # results disagreeing on the direction of one bundle
        assert "disagree" in str(exc)


@pytest.mark.parametrize("content", [b"\xff", b"[1, 2]", b"[" * 100_000, b"", b"NaN"])
def test_a_corrupt_run_json_is_a_clear_error(tmp_path, content):
    (tmp_path / "episodes").mkdir()
    (tmp_path / "run.json").write_bytes(content)
    try:
        loaded = load_run(tmp_path)
    except CtxevalError as exc:
        assert str(exc).startswith(f"{tmp_path / 'run.json'}: "), str(exc)
    else:
        assert loaded.run_id


# -- submissions ---------------------------------------------------------------------------------------
FUZZ_SEEDS = tuple(range(MIN_SEEDS))


def write_artefacts(folder: Path) -> dict[str, str]:
    """MIN_SEEDS toy episodes' artefacts; episode id -> digest."""
    digests = {}
    for seed in FUZZ_SEEDS:
        artefacts = folder / "artefacts" / f"toy-oracle-s{seed}"
        artefacts.mkdir(parents=True)
        (artefacts / "predictions.csv").write_text(f"id,target\n0,{seed}\n")
        digests[artefacts.name] = artefact_digest(artefacts)
    return digests


# The run.json a submission carries: what `ctxeval run toy --agent oracle --seeds 3` writes (trimmed).
RUN_RECORD: dict[str, Any] = {
    "schema_version": 1, "run_id": "fuzz", "ctxeval_version": "0.1.0", "backend": "local",
    "created_at": "2026-01-01T00:00:00+00:00", "attempts": [{"pid": 1, "started_at": "2026-01-01T00:00:00+00:00"}],
    "matrix": {"bundles": ["toy"], "seeds": list(FUZZ_SEEDS),
               "agents": [{"agent": "oracle", "model": None, "policy": "full_history", "mode": "controller",
                           "base_url": None, "stop_on_valid_output": False, "actions": None}]},
    "episodes": [f"toy-oracle-s{seed}" for seed in FUZZ_SEEDS],
    "bundles": {"toy": {"version": "1.0.0", "path": "bundles/toy"}},
    "images": {"toy": {"image": None, "image_hash": None}},
}
RUN_TEXT = json.dumps(RUN_RECORD, indent=2, sort_keys=True)


def honest_document() -> dict[str, Any]:
    """A hand-built submission of MIN_SEEDS toy episodes whose hashes, digests and totals all hold."""
    bundle = load_bundle(BUNDLES_DIR / "toy")
    with tempfile.TemporaryDirectory() as scratch:
        digests = write_artefacts(Path(scratch))
    episodes = [{"episode_id": episode_id, "bundle": "toy", "seed": seed, "status": "completed",
                 "score": 0.9 + seed / 100, "success": True,
                 "tokens": {"prompt": 10, "completion": 5, "summarizer": 0, "total": 15},
                 "cost_usd": 0.01, "medal": None, "artefact_digest": digest}
                for seed, (episode_id, digest) in zip(FUZZ_SEEDS, digests.items())]
    return {
        "schema_version": SCHEMA_VERSION, "created_at": "2026-01-01T00:00:00+00:00", "ctxeval_version": "0.1.0",
        "source_run_id": "fuzz", "run_json_sha256": hashlib.sha256(RUN_TEXT.encode()).hexdigest(),
        "model": "oracle", "policy": "-", "mode": "fixed",
        "agent": {"kind": "oracle", "mode": "fixed", "model": None, "policy": None},
        "bundles": [{"id": "toy", "version": bundle.version, "bundle_hash": hash_tree(bundle.root),
                     "grader_hash": grader_hash(bundle), "image": None, "image_hash": None,
                     "metric": bundle.target.metric, "direction": bundle.target.direction}],
        "seeds": list(FUZZ_SEEDS), "episodes": episodes, "totals": compute_totals(episodes),
    }


HONEST = honest_document()
HONEST_TEXT = json.dumps(HONEST, indent=2)


def changed(change: Callable[[dict[str, Any]], None]) -> str:
    document = copy.deepcopy(HONEST)
    change(document)
    return json.dumps(document, indent=2)


def _huge_scores(document: dict[str, Any]) -> None:  # consistent claims whose sum overflows
    for episode in document["episodes"]:
        episode["score"] = 1.7e308
    document["totals"]["mean_score"] = {"toy": 1.7e308}


def honest_folder(folder: Path) -> Path:
    write_artefacts(folder)
    (folder / RUN_FILE).write_text(RUN_TEXT)
    (folder / SUBMISSION_FILE).write_text(HONEST_TEXT)
    assert verify_submission(folder, backend="local", regrade=False) == []  # the positive control
    return folder


@pytest.fixture(scope="module")
def submission_folder(tmp_path_factory) -> Path:
    return honest_folder(tmp_path_factory.mktemp("submission"))


REASON = re.compile(r"submission\.json: (?P<path>\$\S*): \S")
SUBMISSION_TEXTS = st.one_of(
    st.builds(lambda d: json.dumps(d, indent=2), mutated(HONEST, JSON_VALUES)),
    st.builds(lambda d: json.dumps(d, indent=2), numbers_tweaked(HONEST)),
    st.integers(0, len(HONEST_TEXT)).map(lambda n: HONEST_TEXT[:n]),
    st.tuples(st.integers(0, len(HONEST_TEXT)), st.text(min_size=1, max_size=5)).map(
        lambda p: HONEST_TEXT[:p[0]] + p[1] + HONEST_TEXT[p[0]:]),
    JSON_TEXTS,
)


@fuzz(120)
@given(text=SUBMISSION_TEXTS)
@example(text="[" * 100_000)  # RecursionError from json.loads
@example(text=changed(_huge_scores))  # OverflowError: math.fsum of the scores
@example(text=changed(lambda d: d["episodes"][0].update(cost_usd=10 ** 400)))  # OverflowError: int to float
def test_verify_submission_reasons_name_the_file_and_path(submission_folder, text):
    (submission_folder / SUBMISSION_FILE).write_bytes(text.encode("utf-8", "surrogatepass"))
    reasons = verify_submission(submission_folder, backend="local", regrade=False)
    event("accepted" if not reasons else "rejected")
    assert isinstance(reasons, list) and all(isinstance(r, str) for r in reasons)
    try:
        same = json.dumps(json.loads(text), sort_keys=True) == json.dumps(HONEST, sort_keys=True)  # 0.0 != 0
    except (ValueError, RecursionError):
        assert reasons, "an unreadable submission was accepted"
        same = False
    if same:
        assert reasons == [], reasons
    for reason in reasons:
        if reason.startswith("artefacts/"):
            continue
        match = REASON.match(reason)
        assert match and JSON_PATH.fullmatch(match["path"]), f"no file and JSON path: {reason!r}"


REASON_IN_EITHER = re.compile(r"(?:submission|run)\.json: (?P<path>\$\S*): \S")
RUN_TEXTS = st.one_of(
    st.builds(lambda d: json.dumps(d, indent=2), mutated(RUN_RECORD, JSON_VALUES)),
    st.builds(lambda d: json.dumps(d, indent=2), numbers_tweaked(RUN_RECORD)),
    st.integers(0, len(RUN_TEXT)).map(lambda n: RUN_TEXT[:n]),
    st.tuples(st.integers(0, len(RUN_TEXT)), st.text(min_size=1, max_size=5)).map(
        lambda p: RUN_TEXT[:p[0]] + p[1] + RUN_TEXT[p[0]:]),
    JSON_TEXTS,
)


@pytest.fixture(scope="module")
def run_file_folder(tmp_path_factory) -> Path:
    return honest_folder(tmp_path_factory.mktemp("submission-run-file"))


@fuzz(100)
@given(text=RUN_TEXTS)
@example(text=RUN_TEXT)  # positive control
@example(text=json.dumps({**RUN_RECORD, "episodes": RUN_RECORD["episodes"][:-1]}))  # a seed's episode left out
def test_verify_submission_reasons_on_a_garbled_run_json(run_file_folder, text):
    """run.json fuzzed, its sha256 in submission.json kept right: reasons name a file and a JSON path."""
    data = text.encode("utf-8", "surrogatepass")
    (run_file_folder / RUN_FILE).write_bytes(data)
    document = dict(HONEST, run_json_sha256=hashlib.sha256(data).hexdigest())
    (run_file_folder / SUBMISSION_FILE).write_text(json.dumps(document, indent=2))
    reasons = verify_submission(run_file_folder, backend="local", regrade=False)
    event("accepted" if not reasons else "rejected")
    assert isinstance(reasons, list) and all(isinstance(r, str) for r in reasons)
    try:
        same = json.dumps(json.loads(text), sort_keys=True) == json.dumps(RUN_RECORD, sort_keys=True)
    except (ValueError, RecursionError):
        assert reasons, "an unreadable run.json was accepted"
        same = False
    if same:
        assert reasons == [], reasons
    for reason in reasons:
        match = REASON_IN_EITHER.match(reason)
        assert match and JSON_PATH.fullmatch(match["path"]), f"no file and JSON path: {reason!r}"
