"""The documentation site's generated pages: the `paved` CLI reference and the code map.

    uv run python -m ci.docs            # rewrite docs/reference/cli.md and code-map.md
    python3 ci/dev.py docs              # build the site (mkdocs build --strict)

The pages are committed so that the site builds without running code; the tests check that
they are what the CLI and the modules say now.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import typer

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reference" / "cli.md"
CODE_MAP = ROOT / "docs" / "reference" / "code-map.md"
#: The packages the code map covers, and where their modules are.
PACKAGES = {
    "paved": ROOT / "libs" / "paved" / "src" / "paved",
    "paved_ml": ROOT / "libs" / "paved-ml" / "src" / "paved_ml",
}


def cli_reference() -> str:
    """The CLI reference page, as markdown."""
    from paved.cli import app

    root = typer.main.get_command(app)
    lines = [
        "# The `paved` command",
        "",
        "Generated from the CLI itself (`uv run python -m ci.docs`); `paved COMMAND --help`",
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


def code_map() -> str:
    """Every module of the two packages with the first line of its docstring, as markdown."""
    lines = [
        "# Where each concept lives",
        "",
        "Generated from the modules' docstrings (`uv run python -m ci.docs`). Each concept has",
        "one module (decision 0024); the first line of its docstring says which.",
        "",
    ]
    for package, folder in PACKAGES.items():
        lines += [f"## `{package}`", "", "| module | what it holds |", "| --- | --- |"]
        for path in sorted(folder.rglob("*.py")):
            name = ".".join(path.relative_to(folder.parent).with_suffix("").parts)
            name = name.removesuffix(".__init__")
            if name.endswith("__main__"):
                continue
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            first = doc.strip().splitlines()[0] if doc.strip() else ""
            lines.append(f"| `{name}` | {first.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    for page, text in ((PAGE, cli_reference()), (CODE_MAP, code_map())):
        page.write_text(text, encoding="utf-8")
        print(f"wrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
