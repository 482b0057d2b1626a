"""Read and check one competition folder of an MLE-bench checkout (mlebench/competitions/<id>/).

Every problem is a Violation naming its file and the key (JSON path) at fault, all reported at once.
The layout is MLE-bench's: config.yaml (id, name, competition_type, description, dataset.answers and
dataset.sample_submission as paths relative to MLE-bench's data folder, `<id>/prepared/...`,
grader.name and grader.grade_fn, preparer), description.md, leaderboard.csv, checksums.yaml, and
the modules grade_fn and preparer name (`mlebench.competitions.<id>.grade:grade`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ValidationFailed, Violation
from ..jsonschemas import read_yaml

PACKAGE = "mlebench"
COMPETITIONS_DIR = Path(PACKAGE) / "competitions"
CONFIG_FILE = "config.yaml"
LEADERBOARD_FILE = "leaderboard.csv"
CHECKSUMS_FILE = "checksums.yaml"
REQUIRED_KEYS = ("id", "name", "competition_type", "description", "dataset.answers", "dataset.sample_submission",
                 "grader.name", "grader.grade_fn", "preparer")
MD5 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class CompetitionFiles:
    """Absolute paths of the competition's files in the checkout."""

    checkout: Path
    folder: Path
    config: Path
    description: Path
    grade: Path
    prepare: Path
    leaderboard: Path
    checksums: Path


@dataclass(frozen=True)
class Competition:
    """What config.yaml and checksums.yaml say; paths of the prepared data are relative to
    public/ (sample_submission) and private/ (answers)."""

    id: str
    name: str
    competition_type: str
    awards_medals: bool | None
    prizes: Any
    grader_name: str
    grade_fn: str
    preparer: str
    answers: str
    sample_submission: str
    checksums: dict[str, dict[str, str]]
    files: CompetitionFiles


def _key(config: Any, dotted: str) -> Any:
    value = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _json_path(dotted: str) -> str:
    return "$." + dotted


def _required(config: Any, label: str, found: list[Violation]) -> dict[str, Any]:
    """The required keys' values; a missing or empty one is a violation naming the key."""
    values = {}
    for dotted in REQUIRED_KEYS:
        value = _key(config, dotted)
        if value is None or value == "":
            found.append(Violation(label, _json_path(dotted), f"missing required key {dotted!r}"))
        elif not isinstance(value, str):
            found.append(Violation(label, _json_path(dotted), f"{dotted} must be a string, not {type(value).__name__}"))
        else:
            values[dotted] = value
    return values


def _prepared_path(value: str, competition_id: str, dotted: str, part: str, label: str,
                   found: list[Violation]) -> str:
    """`<id>/prepared/<part>/<file>` (MLE-bench's data-folder layout) -> `<file>`."""
    prefix = f"{competition_id}/prepared/{part}/"
    rel = value[len(prefix):] if value.startswith(prefix) else ""
    if not rel or rel.startswith("/") or ".." in Path(rel).parts:
        found.append(Violation(label, _json_path(dotted), f"{value!r} is not a file under {prefix} (the layout "
                                                          "MLE-bench prepares)"))
    return rel


def _module_file(checkout: Path, spec: str, dotted: str, label: str, found: list[Violation]) -> Path:
    """The file of the module in `package.module:function`; it must be part of the checkout's mlebench."""
    module, colon, function = spec.partition(":")
    if not colon or not function or not module.startswith(PACKAGE + "."):
        found.append(Violation(label, _json_path(dotted), f"{spec!r} is not `{PACKAGE}.<module path>:<function>`"))
        return checkout
    base = checkout / module.replace(".", "/")
    for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    found.append(Violation(label, _json_path(dotted), f"module {module} of {spec} not found: no file "
                                                      f"{base.relative_to(checkout)}.py in the checkout"))
    return base.with_name(base.name + ".py")


def _checksums(path: Path, found: list[Violation]) -> dict[str, dict[str, str]]:
    """checksums.yaml's public and private maps ({file: md5}); `zip` is not needed (raw files arrive unpacked)."""
    label = str(path)
    if not path.is_file():
        found.append(Violation(label, "$", "file not found: the competition has no checksums.yaml"))
        return {}
    try:
        document = read_yaml(path)
    except ValidationFailed as exc:
        found.extend(exc.violations)
        return {}
    result: dict[str, dict[str, str]] = {}
    for part in ("public", "private"):
        section = document.get(part) if isinstance(document, dict) else None
        if not isinstance(section, dict) or not section:
            found.append(Violation(label, f"$.{part}", f"missing key {part!r}: a map of file name to md5"))
            continue
        for name, digest in section.items():
            if not isinstance(digest, str) or not MD5.match(digest):
                found.append(Violation(label, f"$.{part}.{name}", f"not an md5 (32 hex digits): {digest!r}"))
        result[part] = {str(k): str(v) for k, v in section.items()}
    return result


def competition_folder(checkout: Path, competition_id: str) -> Path:
    folder = checkout / COMPETITIONS_DIR / competition_id
    if not folder.is_dir():
        raise ValidationFailed([Violation(str(folder), "$", f"not found: {checkout} is not an MLE-bench checkout "
                                                           f"with competition {competition_id!r} "
                                                           f"(expected {COMPETITIONS_DIR}/{competition_id}/)")])
    return folder


def _read_config(path: Path, competition_id: str) -> Any:
    if not path.is_file():
        raise ValidationFailed([Violation(str(path), "$", "file not found: the competition has no config.yaml")])
    config = read_yaml(path)
    if not isinstance(config, dict):
        raise ValidationFailed([Violation(str(path), "$", "must be a mapping of keys")])
    if config.get("id") not in (None, competition_id):
        raise ValidationFailed([Violation(str(path), "$.id", f"id {config['id']!r} differs from the folder "
                                                             f"name {competition_id!r}")])
    return config


def read_competition(checkout: Path, competition_id: str) -> Competition:
    """The competition `competition_id` of the checkout, checked; ValidationFailed lists every problem."""
    checkout = Path(checkout).resolve()
    folder = competition_folder(checkout, competition_id)
    config_path = folder / CONFIG_FILE
    config = _read_config(config_path, competition_id)
    label, found = str(config_path), []
    values = _required(config, label, found)
    description = checkout / values.get("description", f"{folder.relative_to(checkout)}/description.md")
    if "description" in values and not description.is_file():
        found.append(Violation(label, "$.description", f"file not found: {values['description']} (relative to "
                                                       f"the checkout {checkout})"))
    answers, sample = (_prepared_path(values[key], competition_id, key, part, label, found) if key in values else ""
                       for key, part in (("dataset.answers", "private"), ("dataset.sample_submission", "public")))
    grade, prepare = (_module_file(checkout, values[key], key, label, found) if key in values else folder / default
                      for key, default in (("grader.grade_fn", "grade.py"), ("preparer", "prepare.py")))
    leaderboard = folder / LEADERBOARD_FILE
    if not leaderboard.is_file():
        found.append(Violation(str(leaderboard), "$", "file not found: the competition has no leaderboard.csv"))
    checksums = _checksums(folder / CHECKSUMS_FILE, found)
    if found:
        raise ValidationFailed(found)
    files = CompetitionFiles(checkout=checkout, folder=folder, config=config_path, description=description,
                             grade=grade, prepare=prepare, leaderboard=leaderboard, checksums=folder / CHECKSUMS_FILE)
    return Competition(id=competition_id, name=values["name"], competition_type=values["competition_type"],
                       awards_medals=config.get("awards_medals"), prizes=config.get("prizes"),
                       grader_name=values["grader.name"], grade_fn=values["grader.grade_fn"],
                       preparer=values["preparer"], answers=answers, sample_submission=sample,
                       checksums=checksums, files=files)
