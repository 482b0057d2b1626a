"""`ctxeval check`: a bundle is sound when its oracle passes and its no-op agent fails."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .agents.fixed import NoopAgent, OracleAgent
from .bundles.manifest import VARIANT_SEPARATOR, Bundle
from .runs import RunPlan, execute, new_run_id


@dataclass
class CheckItem:
    name: str
    passed: bool
    detail: str


@dataclass
class CheckReport:
    items: list[CheckItem] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(item.passed for item in self.items)

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.items.append(CheckItem(name, passed, detail))


def _image_item(report: CheckReport, image: str | None, image_hash: str | None) -> None:
    if image is None:
        report.add("image", True, "the backend runs without an image")
        return
    import docker

    from .images.builder import LABEL_INPUT_HASH
    labels = docker.from_env().images.get(image).labels or {}
    ok = labels.get(LABEL_INPUT_HASH) == image_hash
    report.add("image", ok, f"{image} input-hash label {'matches' if ok else 'does NOT match'}")


def check_bundle(bundle: Bundle, backend: str, image: str | None, image_hash: str | None,
                 runs_root: Path | None = None) -> CheckReport:
    report = CheckReport()
    variant = f" (variant {bundle.variant})" if bundle.variant else ""
    report.add("manifest", True, f"{bundle.manifest_path}{variant} and its schemas validate")
    _image_item(report, image, image_hash)
    stamp = new_run_id()
    for agent, should_pass in ((OracleAgent(), True), (NoopAgent(), False)):
        plan = RunPlan(bundle=bundle, agent=agent, seeds=[0], backend=backend, root=runs_root,
                       run_id=f"check-{bundle.id.replace(VARIANT_SEPARATOR, '-')}-{agent.kind}-{stamp}")
        [result] = execute(plan, image, image_hash)
        ok = result["status"] == "completed" and result["success"] is should_pass
        why = (f"success={result['success']} score={result['score']} output_valid={result['output']['valid']}"
               + (f" grade: {result['grade'].get('reason')}" if result["grade"] and result["grade"].get("reason") else "")
               + (f" error: {result['error']}" if result["error"] else ""))
        report.add(f"{agent.kind} {'passes' if should_pass else 'fails'}", ok, why)
    return report
