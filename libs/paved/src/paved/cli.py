"""The `paved` command line: thin Typer wrappers over the package's functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from paved import __version__
from paved._errors import PavedError
from paved._new import PLATFORM_URL, new_project

app = typer.Typer(
    name="paved",
    help="Generate and maintain ML team repos from the Paved platform template.",
    no_args_is_help=True,
    add_completion=False,
)
_err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paved {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Paved: the paved road for ML teams."""


@app.command()
def new(
    dest: Annotated[Path, typer.Argument(help="Folder for the new repo: new, or empty.")],
    src: Annotated[str, typer.Option(help="The platform repo to generate from.")] = PLATFORM_URL,
    data: Annotated[
        list[str] | None,
        typer.Option("--data", "-d", help="An answer as NAME=VALUE; repeat for more."),
    ] = None,
    vcs_ref: Annotated[
        str | None, typer.Option(help="Platform release or commit (default: the latest release).")
    ] = None,
    defaults: Annotated[
        bool, typer.Option(help="Take the default for every question not given with --data.")
    ] = False,
    lock: Annotated[bool, typer.Option(help="Run `uv lock` in the new repo.")] = True,
) -> None:
    """Generate a team repo, initialise git, lock its environment and commit."""
    try:
        answers = _parse_data(data or [])
        path = new_project(
            dest, src=src, data=answers, vcs_ref=vcs_ref, defaults=defaults, lock=lock
        )
    except PavedError as exc:
        _err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    _err.print(f"[green]created[/] {path}")


def _parse_data(pairs: list[str]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise PavedError(f"--data {pair!r}: expected NAME=VALUE")
        answers[name] = value
    return answers


def main() -> None:
    """Entry point of the `paved` script."""
    app()
