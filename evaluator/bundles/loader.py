"""Load bundle.yaml: schema validation, then file and cross-reference checks, all reported at once."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ValidationFailed, Violation
from ..jsonschemas import data_violations, project_schema, read_yaml, schema_errors, violations
from .manifest import (DEFAULT_GRADER_TIMEOUT_SECONDS, MANIFEST_NAME, VARIANT_SEPARATOR, Bundle, ControllerSpec,
                       DataSpec, FetchSpec, GraderRunSpec, Limits, ProbeSpec, SuccessRule, Target, ToolSpec)
from .variants import PathMap, apply_variant, remap, split_variant, variant_names


def _read_yaml(path: Path) -> Any:
    try:
        return read_yaml(path)
    except OSError as exc:
        raise ValidationFailed([Violation(str(path), "$", f"cannot read: {exc.strerror or exc}")]) from None


def _read_json_schema(path: Path, file_label: str, json_path: str,
                      found: list[Violation]) -> dict[str, Any]:
    try:
        schema = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not JSON, not UTF-8
        found.append(Violation(file_label, json_path, f"cannot read JSON Schema {path.name}: {exc}"))
        return {}
    problems = data_violations(schema, str(path))
    if problems:
        found.extend(problems)
        return {}
    found.extend(Violation(str(path), v.json_path, f"not a valid JSON Schema: {v.message}")
                 for v in schema_errors(schema, str(path)))
    return schema


def manifest_path_of(path: Path) -> Path:
    path = Path(path)
    return path / MANIFEST_NAME if path.is_dir() else path


def _probes(raw: dict[str, Any], label: str, found: list[Violation]) -> list[ProbeSpec]:
    """The manifest's probes; duplicate ids and asks not after the plant call are violations."""
    probes = [ProbeSpec.from_manifest(item) for item in raw.get("probes", [])]
    seen: set[str] = set()
    for i, probe in enumerate(probes):
        if probe.id in seen:
            found.append(Violation(label, f"$.probes[{i}].id", f"duplicate probe id {probe.id!r}"))
        seen.add(probe.id)
        for j, call in enumerate(raw["probes"][i]["ask"]["before_calls"]):
            if call <= probe.plant_after_call:
                found.append(Violation(label, f"$.probes[{i}].ask.before_calls[{j}]",
                                       f"asked before call {call}, but the fact is planted after call "
                                       f"{probe.plant_after_call}: every ask call must be later than the plant call"))
    return probes


def _read_manifest(manifest: Path, variant: str | None) -> tuple[dict[str, Any], tuple[str, ...], PathMap]:
    """The manifest (with the variant's overrides applied), its variants' names, and the map from
    JSON paths of the merged manifest to those of the file. Schema violations raise."""
    label = str(manifest)
    raw = _read_yaml(manifest)
    found = violations(raw, project_schema("bundle"), label, strict_integers=True)
    if found:
        raise ValidationFailed(found)
    names = variant_names(raw)
    if variant is None:
        return raw, names, lambda json_path: json_path
    merged, where = apply_variant(raw, variant, label)
    found = remap(violations(merged, project_schema("bundle"), label, strict_integers=True), where)
    if found:
        raise ValidationFailed(found)
    return merged, names, where


@dataclass
class _Files:
    """Checks the manifest's relative paths against the bundle folder, collecting violations."""

    root: Path
    label: str
    found: list[Violation]

    def existing(self, rel: str, json_path: str, want_dir: bool | None = None) -> Path:
        try:
            target = (self.root / rel).resolve()
            exists = target.exists()
        except (OSError, ValueError, RuntimeError) as exc:  # name too long, NUL byte, symlink loop
            self.found.append(Violation(self.label, json_path, f"cannot use path {rel!r}: {exc}"))
            return self.root
        if not exists:
            self.found.append(Violation(self.label, json_path, f"file not found: {rel}"))
        elif want_dir is True and not target.is_dir():
            self.found.append(Violation(self.label, json_path, f"not a folder: {rel}"))
        elif want_dir is False and not target.is_file():
            self.found.append(Violation(self.label, json_path, f"not a file: {rel}"))
        return target


def _locate_manifest(path: Path) -> Path:
    """The resolved bundle.yaml of a folder or file; a violation when it cannot be found or read."""
    manifest = path
    try:
        manifest = manifest_path_of(manifest)
        manifest = manifest.resolve()
        present = manifest.exists()
    except (OSError, ValueError, RuntimeError) as exc:  # name too long, NUL byte, symlink loop
        raise ValidationFailed([Violation(str(manifest), "$", f"cannot read bundle manifest: {exc}")]) from None
    if not present:
        raise ValidationFailed([Violation(str(manifest), "$", "bundle manifest not found")])
    return manifest


def _tools(raw: dict[str, Any], files: _Files) -> tuple[list[ToolSpec], Path | None]:
    """The declared tools (valid parameter schemas, unique names) and the tools/ folder."""
    label, found = files.label, files.found
    tools = []
    for i, t in enumerate(raw.get("tools", [])):
        found.extend(Violation(label, f"$.tools[{i}].parameters{v.json_path[1:]}",
                               f"not a valid JSON Schema: {v.message}")
                     for v in schema_errors(t["parameters"], label))
        tools.append(ToolSpec(**t))
    names = [t.name for t in tools]
    for i, name in enumerate(names):
        if names.index(name) != i:
            found.append(Violation(label, f"$.tools[{i}].name", f"duplicate tool name {name!r}"))
    # tools/ is mounted whenever it exists: it may hold libraries the agent's code imports, too
    tools_dir = (files.root / "tools") if (files.root / "tools").is_dir() else None
    if tools and tools_dir is None:
        found.append(Violation(label, "$.tools", "the bundle declares tools but has no tools/ folder"))
    return tools, tools_dir


def _controller(raw: dict[str, Any], tools: list[ToolSpec], files: _Files) -> ControllerSpec | None:
    """Controller mode's section: a valid proposal schema and an apply tool the bundle declares."""
    if "controller" not in raw:
        return None
    c = raw["controller"]
    files.found.extend(Violation(files.label, f"$.controller.proposal_schema{v.json_path[1:]}",
                                 f"not a valid JSON Schema: {v.message}")
                       for v in schema_errors(c["proposal_schema"], files.label))
    if c["apply_tool"] not in [t.name for t in tools]:
        files.found.append(Violation(files.label, "$.controller.apply_tool", f"no tool named {c['apply_tool']!r}"))
    return ControllerSpec(**c)


def _data(raw: dict[str, Any], files: _Files) -> DataSpec | None:
    if "data" not in raw:
        return None
    fields = dict(raw["data"])
    fetch = FetchSpec(**fields.pop("fetch")) if "fetch" in fields else None
    data = DataSpec(**fields, fetch=fetch)
    files.existing(data.prepare[0], "$.data.prepare[0]", want_dir=False)
    return data


def _target(raw: dict[str, Any]) -> Target:
    t = raw["target"]
    return Target(metric=t["metric"], direction=t["direction"], baseline=t.get("baseline"),
                  success=SuccessRule(**t["success"]), open_ended=bool(t.get("open_ended", False)))


def _grader_run(grader: dict[str, Any]) -> GraderRunSpec | None:
    if "run" not in grader:
        return None
    return GraderRunSpec(grader["run"]["plan"], float(grader["run"].get("timeout_seconds", 300)))


def load_bundle(path: str | Path) -> Bundle:
    """Load and fully check a bundle folder (or its bundle.yaml), or a variant of it
    (`bundles/toy@long`). Raises ValidationFailed."""
    manifest_arg, variant = split_variant(path)
    manifest = _locate_manifest(manifest_arg)
    root, label = manifest.parent, str(manifest)
    raw, variants, where = _read_manifest(manifest, variant)
    files = _Files(root, label, [])
    existing = files.existing

    task = existing(raw["task"], "$.task", want_dir=False)
    image, ws, grader, output = raw["image"], raw["workspace"], raw["grader"], raw["output"]
    dockerfile = existing(image["dockerfile"], "$.image.dockerfile", want_dir=False)
    context = [existing(rel, f"$.image.context[{i}]") for i, rel in enumerate(image.get("context", []))]
    starter = existing(ws["starter"], "$.workspace.starter", want_dir=True)
    reference = existing(ws["reference"], "$.workspace.reference", want_dir=True) if "reference" in ws else None
    tools, tools_dir = _tools(raw, files)
    grader_dir = existing(grader.get("path", "grader"), "$.grader.path", want_dir=True)
    schema_file = existing(output["schema"], "$.output.schema", want_dir=False)
    output_schema = (_read_json_schema(schema_file, label, "$.output.schema", files.found)
                     if schema_file.is_file() else {})
    controller = _controller(raw, tools, files)
    data = _data(raw, files)
    if ws.get("reference_command") and reference is None:
        files.found.append(Violation(label, "$.workspace.reference_command", "needs workspace.reference"))
    probes = _probes(raw, label, files.found)
    if files.found:
        raise ValidationFailed(remap(files.found, where))
    return Bundle(
        root=root, manifest_path=manifest, raw=raw, version=raw["version"],
        id=f"{raw['id']}{VARIANT_SEPARATOR}{variant}" if variant else raw["id"],
        variant=variant, variants=variants, probes=probes,
        title=raw["title"], description=raw.get("description", ""), task_path=task,
        dockerfile=dockerfile, image_context=context, build_args=dict(image.get("build_args", {})),
        starter_dir=starter, reference_dir=reference, reference_command=ws.get("reference_command"),
        tools_dir=tools_dir, tools=tools, data=data, grader_dir=grader_dir,
        grader_command=grader["command"],
        grader_timeout_seconds=float(grader.get("timeout_seconds", DEFAULT_GRADER_TIMEOUT_SECONDS)),
        grader_submission=grader.get("submission"), grader_run=_grader_run(grader),
        output_path=output["path"], output_schema_path=schema_file, output_schema=output_schema,
        target=_target(raw), limits=Limits.from_manifest(raw.get("limits", {})), controller=controller,
        bundle_lib=bool(raw.get("bundle_lib", False)),
    )
