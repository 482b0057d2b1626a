"""ctxeval's runtime support for a bundle imported from MLE-bench; standard library only.

`ctxeval import mlebench` copies this file into the generated bundle's grader/ and data/ folders.
There it loads the competition's own functions (grade, prepare) from the MLE-bench files copied
beside it in mlebench_src/, with no mlebench package installed; verifies the prepared files against
the competition's checksums.yaml (MLE-bench's rule: the md5 of every csv/json/jsonl/parquet/bson file
directly under public/ and private/); and ranks a score against the medal thresholds recorded at
import time (MLE-bench's rank_score).

Absent optional dependencies: MLE-bench's helper modules import some libraries at module level
that grading never uses (mlebench/utils.py imports py7zr for archives). The names listed in
competition.json `stub_modules` get a placeholder module when, and only when, the real one cannot
be imported; using anything from a placeholder raises MissingDependency (an ImportError), which the
grader reports as its own failure, never as a bad submission.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any, Callable, Iterable

COMPETITION_FILE = "competition.json"
SOURCE_DIR = "mlebench_src"
CHECKSUM_EXTENSIONS = ("csv", "json", "jsonl", "parquet", "bson")  # MLE-bench's generate_checksums
PACKAGE = "mlebench"
_ROOTS: list[str] = []  # the source folder load_function put on sys.path


class MissingDependency(ImportError):
    """A library the competition's code uses is not installed here."""


def _missing(name: str) -> MissingDependency:
    return MissingDependency(f"{name} is used by the competition's code but its package "
                             f"({name.split('.')[0]}) is not installed in this environment")


class _Absent:
    """Stands for a name imported from an absent module; any use raises MissingDependency."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _missing(self._name)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        raise _missing(f"{self._name}.{attribute}")


class _AbsentModule(types.ModuleType):
    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return _Absent(f"{self.__name__}.{attribute}")


class _StubLoader(importlib.abc.Loader):
    def create_module(self, spec: Any) -> types.ModuleType:
        return _AbsentModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []  # a package: `from tqdm.auto import tqdm` imports a submodule
        module.__ctxeval_stub__ = True


class _StubFinder(importlib.abc.MetaPathFinder):
    """Last on sys.meta_path: answers only for the listed top-level names nothing else found."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.partition(".")[0] not in self.names:
            return None
        return importlib.util.spec_from_loader(fullname, _StubLoader(), is_package=True)


def install_stubs(names: Iterable[str]) -> None:
    names = [n for n in names if n]
    if names and not any(isinstance(f, _StubFinder) for f in sys.meta_path):
        sys.meta_path.append(_StubFinder(names))


def forget_package(package: str = PACKAGE) -> None:
    """Drop `package` and its submodules from sys.modules (a later import reads the files again)."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def load_function(root: Path | str, spec: str, stubs: Iterable[str] = ()) -> Callable[..., Any]:
    """The function `module.path:name` (MLE-bench's import_fn format), imported with `root` first on
    sys.path. Any exception of the import is raised as is."""
    module_name, _, function_name = spec.partition(":")
    install_stubs(stubs)
    forget_package(module_name.partition(".")[0])
    for earlier in _ROOTS:  # a root of an earlier call must not serve this one's modules
        while earlier in sys.path:
            sys.path.remove(earlier)
    _ROOTS[:] = [str(root)]
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    module = importlib.import_module(module_name)
    function = getattr(module, function_name)
    if not callable(function):
        raise TypeError(f"{spec} is not a function")
    return function


def invalid_submission_error() -> type[BaseException] | None:
    """mlebench.grade_helpers.InvalidSubmissionError, if the competition's code loaded it."""
    helpers = sys.modules.get(f"{PACKAGE}.grade_helpers")
    error = getattr(helpers, "InvalidSubmissionError", None)
    return error if isinstance(error, type) and issubclass(error, BaseException) else None


def read_competition(folder: Path) -> dict[str, Any]:
    return json.loads((folder / COMPETITION_FILE).read_text())


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksums(folder: Path) -> dict[str, str]:
    """{file name: md5} of the files MLE-bench checksums directly under `folder`."""
    found: dict[str, str] = {}
    for extension in CHECKSUM_EXTENSIONS:
        for path in sorted(folder.glob(f"*.{extension}")):
            if path.is_file():
                found[path.name] = md5(path)
    return found


def checksum_problems(expected: dict[str, Any], out: Path, parts: Iterable[str] = ("public", "private")) -> list[str]:
    """Every difference between the expected checksums (checksums.yaml's public/private maps) and the
    files under out/public and out/private, one line each; [] when they agree."""
    problems = []
    for part in parts:
        want = expected.get(part) or {}
        have = checksums(out / part)
        for name in sorted(set(want) | set(have)):
            if name not in have:
                problems.append(f"{part}/{name}: expected (md5 {want[name]}) but prepare did not write it")
            elif name not in want:
                problems.append(f"{part}/{name}: written by prepare (md5 {have[name]}) but not listed")
            elif str(want[name]) != have[name]:
                problems.append(f"{part}/{name}: md5 {have[name]}, expected {want[name]}")
    return problems


def rank(score: float, medals: dict[str, Any]) -> dict[str, Any]:
    """MLE-bench's rank_score for a valid score: medals are inclusive of their threshold, the
    median is strict. `medals`: gold, silver, bronze, median, lower_is_better."""
    lower = bool(medals["lower_is_better"])

    def reaches(threshold: float) -> bool:
        return score <= threshold if lower else score >= threshold

    medal = next((level for level in ("gold", "silver", "bronze") if reaches(medals[level])), None)
    above_median = score < medals["median"] if lower else score > medals["median"]
    return {"medal": medal or ("above_median" if above_median else "none"), "any_medal": medal is not None,
            "above_median": above_median}
