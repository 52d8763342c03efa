"""The documentation site's generated page: the `paved` CLI reference, from the Typer app.

    uv run python ci/docs.py            # rewrite docs/reference/cli.md
    python3 ci/dev.py docs              # build the site (mkdocs build --strict)

The page is committed so that the site builds without running code; the tests check that it
is what the CLI says now.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reference" / "cli.md"


def cli_reference() -> str:
    """The CLI reference page, as markdown."""
    from paved.cli import app

    root = typer.main.get_command(app)
    lines = [
        "# The `paved` command",
        "",
        "Generated from the CLI itself (`uv run python ci/docs.py`); `paved COMMAND --help`",
        "prints the same.",
        "",
    ]
    for path, command in _walk(root, ["paved"]):
        lines += _command(path, command)
    return "\n".join(lines).rstrip() + "\n"


def _walk(command: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    """Every leaf command under `command` (Typer's own click: duck-typed), with its path."""
    found: list[tuple[list[str], Any]] = []
    if getattr(command, "commands", None):
        for name in sorted(command.commands):
            found += _walk(command.commands[name], [*path, name])
    else:
        found.append((path, command))
    return found


def _command(path: list[str], command: Any) -> list[str]:
    name = " ".join(path)
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    usage = " ".join([name, "[OPTIONS]", *((p.metavar or p.name).upper() for p in arguments)])
    lines = [f"## `{name}`", "", (command.help or "").strip(), "", "```", usage, "```", ""]
    rows = []
    for param in command.params:
        if param.param_type_name == "argument":
            label = f"`{(param.metavar or param.name).upper()}`"
        else:
            label = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
        help_text = getattr(param, "help", None) or ""
        default = param.default
        shown = (
            ""
            if default in (None, (), [], False) or callable(default)
            else f" (default: `{default}`)"
        )
        rows.append(f"| {label} | {help_text.replace('|', '/')}{shown} |")
    if rows:
        lines += ["| argument or option | meaning |", "| --- | --- |", *rows, ""]
    return lines


def main() -> int:
    PAGE.write_text(cli_reference(), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
