"""What every `ctxeval` command shares: the console, the error handling, bundle arguments, options.

Heavy imports stay inside the functions so `ctxeval --help` starts fast.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, TypeVar

import typer

Command = TypeVar("Command", bound=Callable[..., Any])

BACKEND_HELP = ("where sandboxes run: auto (docker when an engine answers, else the unisolated local "
                "backend), a registered provider (docker, local) or package.module:Class [default: auto]")
BACKEND = typer.Option(None, "--backend", help=BACKEND_HELP, show_default=False)
RUNS_DIR_HELP = "where runs are written and looked up (default: CTXEVAL_RUNS_DIR from the environment or .env, else runs/)"
DEFAULT_BACKEND = "auto"


def console():
    from rich.console import Console
    return Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    console().print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def warn(message: str) -> None:
    from rich.markup import escape
    console().print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def handles_errors(command: Command) -> Command:
    """A command whose CtxevalError becomes a one-line message (never a traceback) and whose stop
    signal exits with 128 + its number, as a shell would report it."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..errors import CtxevalError, ValidationFailed
        from ..interrupts import RunInterrupted
        try:
            return command(*args, **kwargs)
        except ValidationFailed as exc:
            fail("\n".join(str(v) for v in exc.violations))
        except RunInterrupted as exc:
            console().print(f"[bold yellow]interrupted:[/] {exc}", highlight=False)
            raise typer.Exit(exc.exit_code)
        except CtxevalError as exc:
            fail(str(exc))
    return wrapper  # type: ignore[return-value]


def bundle_path(path: Path) -> Path:
    """A bundle folder, its manifest, or the id of a bundle under bundles/; any of them may name a
    variant (`toy@long`)."""
    from ..bundles.registry import bundle_registry
    return bundle_registry().resolve(path)


def load_bundle_arg(path: Path):
    """The bundle a command argument names; an invalid one fails with every violation listed."""
    from ..bundles import load_bundle
    from ..errors import ValidationFailed
    try:
        return load_bundle(bundle_path(path))
    except ValidationFailed as exc:
        fail("invalid bundle:\n" + "\n".join(f"  {v}" for v in exc.violations))


def chosen_backend(requested: Optional[str]) -> str:
    """The backend a command runs on: the one asked for, or auto (docker when an engine answers)."""
    from ..sandbox import resolve_backend
    return resolve_backend(requested or DEFAULT_BACKEND, warn=warn)


def image_for(bundle, backend: str, base_source: str = "auto") -> tuple[str | None, str | None]:
    """(tag, input hash) of the bundle's image, built if missing; (None, None) where the backend
    runs without an image."""
    from ..sandbox import provider
    if not provider(backend).needs_image:
        return None, None
    from ..images import ImageBuilder
    out = console()
    with out.status(f"images for {bundle.id}…") as status:
        builder = ImageBuilder(base_source=base_source, log=lambda m: status.update(m[:100]))
        ref = builder.bundle_image(bundle)
    out.print(f"image {ref.tag} ({'built' if ref.built else 'cached'})")
    return ref.tag, ref.input_hash
