"""`ctxeval build`: the base image and the bundle images, optionally only what changed, optionally pushed."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import typer

from .common import console, fail, handles_errors, load_bundle_arg


@dataclass
class BuildPlan:
    """What `build` builds: the base image or not, these bundles, and why each was chosen."""

    bundles: list[Any]
    build_base: bool = True
    reasons: dict[str, str] = field(default_factory=dict)


def _plan_changed_since(out, status, builder, loaded: list, ref: str, pushing: bool) -> BuildPlan:
    """Only the images whose input hash differs from the one at git REF; the skipped ones are said."""
    from ..images.changes import plan_changed_since
    status.update(f"comparing input hashes with {ref}…")
    plan = plan_changed_since(builder, loaded, ref)
    out.print(f"changed since {ref} ({plan.commit[:12]}), by input hash:", highlight=False)
    if not plan.base.build:
        out.print(f"skip   base {plan.base.tag}: {plan.base.reason}", highlight=False)
    for _, decision in plan.bundles:
        if not decision.build:
            out.print(f"skip   bundle {decision.tag}: {decision.reason}", highlight=False)
    if not plan.base.build and not plan.to_build:
        out.print(f"nothing changed since {ref}: no image to build" + (", none to push" if pushing else ""),
                  highlight=False)
    elif plan.base.build:
        out.print(f"base   {plan.base.reason}", highlight=False)
    return BuildPlan(bundles=list(plan.to_build), build_base=plan.base.build,
                     reasons={bundle.id: decision.reason for bundle, decision in plan.bundles})


def _build_images(out, builder, plan: BuildPlan) -> list[str]:
    """Build (or find cached) what the plan names; the tags, in build order."""
    tags: list[str] = []
    if plan.build_base:
        base = builder.base_image()
        out.print(f"base   {base.tag} ({'built' if base.built else 'cached'})")
        tags.append(base.tag)
    for bundle in plan.bundles:
        ref = builder.bundle_image(bundle)
        why = f": {plan.reasons[bundle.id]}" if bundle.id in plan.reasons else ""
        out.print(f"bundle {ref.tag} ({'built' if ref.built else 'cached'}){why}", highlight=False)
        tags.append(ref.tag)
    return tags


@handles_errors
def build(bundles: list[Path] = typer.Argument(None, help="bundles to build (default: all under bundles/)"),
          base_source: str = typer.Option("auto", help="auto | registry | offline"),
          changed_since: Optional[str] = typer.Option(
              None, "--changed-since", metavar="REF",
              help="build only the images whose input hash differs from the one at git REF (commit, branch or "
                   "tag; uncommitted changes count). Decided by hash, not by file names: a README edit builds "
                   "nothing, a changed base rebuilds every bundle. Skipped images are listed with the reason."),
          push: Optional[str] = typer.Option(
              None, "--push", metavar="REGISTRY",
              help="then tag every image this command built or found cached as REGISTRY/ctxeval/<name>:<hash> "
                   "and push it (e.g. localhost:5000 or ghcr.io/org); prints each pushed digest. Credentials: "
                   "the Docker config (docker login), or --registry-username with DOCKER_PASSWORD."),
          registry_username: Optional[str] = typer.Option(
              None, "--registry-username",
              help="log in to the --push registry as this user; the password or token is read from the "
                   "DOCKER_PASSWORD environment variable (never printed)")) -> None:
    """Build the base image and bundle images, tagged by input hash; existing tags are skipped.

    --changed-since REF: build only the images whose inputs changed since a git revision.

    --push REGISTRY: then push the images built (or found cached) to a registry.
    """
    from ..images import ImageBuilder
    from ..bundles.registry import bundle_registry
    out = console()
    registry = auth = None
    if push is not None:
        from ..images.push import normalize_registry, registry_auth
        registry, auth = normalize_registry(push), registry_auth(registry_username)
    elif registry_username:
        fail("--registry-username only goes with --push REGISTRY")
    loaded = [load_bundle_arg(path) for path in bundles or bundle_registry().folders()]
    if changed_since is not None:  # a bad REF fails at once, before the Docker engine is asked
        from ..images.changes import git_toplevel, resolve_commit
        from ..paths import PROJECT_ROOT
        resolve_commit(changed_since, git_toplevel(PROJECT_ROOT))
    pushed = []
    with out.status("base image…") as status:
        builder = ImageBuilder(base_source=base_source, log=lambda m: status.update(m[:100]))
        plan = (BuildPlan(bundles=loaded) if changed_since is None
                else _plan_changed_since(out, status, builder, loaded, changed_since, registry is not None))
        tags = _build_images(out, builder, plan)
        if registry and tags:
            from ..images.push import push_images
            pushed = push_images(builder.client, tags, registry, auth, log=lambda m: status.update(m[:100]))
    for item in pushed:
        typer.echo(f"pushed {item.remote} {item.digest}")


COMMANDS = {"build": build}
