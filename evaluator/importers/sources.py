"""Which files of an MLE-bench checkout a competition's code needs, read from the code (ast).

The grading container has no mlebench installed: the bundle gets a copy of the competition's
modules and of every mlebench module they import, transitively (`from mlebench.utils import x`,
`from .classes import Y`). The same reading lists the third-party libraries each file imports at
module level, and the raw file names prepare.py reads (`raw / "train.csv"`).
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "mlebench"
# import names the ctxeval base image provides (scripts/base_image/requirements.txt and their dependencies)
BASE_IMAGE_MODULES = frozenset({"numpy", "pandas", "sklearn", "scipy", "joblib", "threadpoolctl", "yaml",
                                "jsonschema", "dateutil", "pytz", "tzdata", "attrs", "referencing", "rpds",
                                "jsonschema_specifications", "six"})


@dataclass
class SourceSet:
    """The checkout files a module needs (absolute paths) and, per file, the third-party top-level
    modules it imports at module level."""

    checkout: Path
    files: set[Path] = field(default_factory=set)
    third_party: dict[Path, set[str]] = field(default_factory=dict)

    def relative(self) -> list[Path]:
        return sorted(f.relative_to(self.checkout) for f in self.files)

    def libraries(self, files: set[Path] | None = None) -> set[str]:
        chosen = self.files if files is None else files
        return set().union(*(self.third_party.get(f, set()) for f in chosen))


def module_name(checkout: Path, file: Path) -> str:
    parts = list(file.relative_to(checkout).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(checkout: Path, name: str) -> Path | None:
    base = checkout / name.replace(".", "/")
    for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(checkout: Path, file: Path) -> list[str]:
    name = module_name(checkout, file).split(".")
    return name if file.name == "__init__.py" else name[:-1]


def _imported_names(tree: ast.AST, package: list[str]) -> set[str]:
    """Absolute names of every module (or module attribute) imported anywhere in the tree."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                keep = len(package) - (node.level - 1)
                base = ".".join(package[:max(keep, 0)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return {n for n in names if n}


def _module_level_imports(tree: ast.Module) -> set[str]:
    """Top-level names of absolute imports run when the module is imported (not inside functions)."""
    found: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.partition(".")[0])
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            pending.extend(node.body)
            pending.extend(getattr(node, "orelse", []))
            pending.extend(getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                pending.extend(handler.body)
    return {n for n in found if n not in sys.stdlib_module_names and n not in (PACKAGE, "__future__")}


def _parse(file: Path) -> ast.Module | None:
    try:
        return ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return None  # the import check reports it with the interpreter's own message


def _ancestors(checkout: Path, file: Path) -> list[Path]:
    """The __init__.py files of the packages above `file` that exist in the checkout."""
    found = []
    folder = file.parent
    while folder != checkout and checkout in folder.parents:
        init = folder / "__init__.py"
        if init.is_file() and init != file:
            found.append(init)
        folder = folder.parent
    return found


def closure(checkout: Path, start: list[Path]) -> SourceSet:
    """Every file of the checkout's mlebench package that importing `start` may import."""
    checkout = checkout.resolve()
    result = SourceSet(checkout)
    pending = [f.resolve() for f in start]
    while pending:
        file = pending.pop()
        if file in result.files:
            continue
        result.files.add(file)
        pending.extend(_ancestors(checkout, file))
        tree = _parse(file)
        if tree is None:
            continue
        result.third_party[file] = _module_level_imports(tree)
        for name in _imported_names(tree, _package_of(checkout, file)):
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                target = module_file(checkout, name)
                if target is not None:
                    pending.append(target)
    return result


def raw_file_names(prepare: Path) -> tuple[list[str], list[str]]:
    """(files, folders): the names prepare.py joins directly to its `raw` argument, as in
    `raw / "train.csv"` or `os.path.join(raw, "train.csv")`; a name without a dot is a folder."""
    tree = _parse(prepare)
    names: set[str] = set()
    for node in ast.walk(tree) if tree is not None else ():
        pair = None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            pair = (node.left, node.right)
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and getattr(node.func, "attr", "") == "join":
            pair = (node.args[0], node.args[1])
        if pair and isinstance(pair[0], ast.Name) and pair[0].id == "raw" and \
                isinstance(pair[1], ast.Constant) and isinstance(pair[1].value, str):
            names.add(pair[1].value.strip("/").split("/")[0])
    names.discard("")
    files = sorted(n for n in names if "." in n and "*" not in n)
    return files, sorted(names - set(files))
