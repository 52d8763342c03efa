"""Driving copier: the one module that renders, updates and locks a team repo.

`paved new` renders, then adds what copier leaves to the user and what `copier update`
needs later: a git repository with a first commit holding the rendered files (update
diffs against it) and the uv lock file. `paved update` and `paved adopt` render and
update through the functions here too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from paved._errors import PavedError
from paved._git import git
from paved._proc import run

__all__ = ["PLATFORM_URL", "copier_update", "identity", "lock_environment", "new_project", "render"]

#: The canonical URL of the platform repository. Generated repos record it as their
#: template source and pin paved-ml and the reusable workflows to it.
PLATFORM_URL = "https://github.com/acme/paved.git"


def new_project(
    dest: Path,
    *,
    src: str = PLATFORM_URL,
    data: Mapping[str, Any] | None = None,
    vcs_ref: str | None = None,
    defaults: bool = False,
    lock: bool = True,
) -> Path:
    """Render the template into `dest` (new or empty), init git, lock, commit; return `dest`.

    On any failure the folder is removed again if this call created it, so a refused
    answer or a failed lock leaves nothing behind.
    """
    _check_source(src)
    dest = dest.absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise PavedError(f"{dest} already exists and is not an empty folder")
    created = not dest.exists()
    try:
        render(src, dest, dict(data or {}), vcs_ref=vcs_ref, defaults=defaults)
        git(dest, "init", "--quiet", "--initial-branch=main")
        if lock:
            lock_environment(dest)
        git(dest, "add", "--all")
        git(dest, *identity(dest), "commit", "--quiet", "-m", "Generate from the Paved template")
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for child in dest.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return dest


def _check_source(src: str) -> None:
    if src.startswith("file://"):
        raise PavedError(
            f"source {src!r}: copier refuses plain file:// URLs; use git+file://{src[7:]}"
        )
    parts = src.rstrip("/").split("/")
    if "templates" in parts[-2:]:
        raise PavedError(
            f"source {src!r} is a folder inside the platform repo: a repo copied from a "
            "subfolder can never be updated. Copy the platform repo itself."
        )


def render(
    src: str, dest: Path, data: dict[str, Any], *, vcs_ref: str | None, defaults: bool
) -> None:
    """Render release `vcs_ref` of `src` into `dest`; a refused answer is a PavedError."""
    from copier import run_copy
    from copier.errors import CopierError

    try:
        run_copy(
            src,
            dest,
            data=data,
            vcs_ref=vcs_ref,
            defaults=defaults,
            quiet=True,
            unsafe=False,
        )
    except (CopierError, ValueError) as exc:
        raise PavedError(str(exc)) from exc


def copier_update(project: Path, target: str, *, trusted: bool) -> None:
    """`copier update` of `project` to `target`, merging inline; trust only the platform's URL."""
    from copier import run_update
    from copier.errors import CopierError

    try:
        run_update(
            project,
            vcs_ref=target,
            defaults=True,
            overwrite=True,
            # Not skip_answered: with it copier would not re-read answers that a migration
            # moved (a renamed question); `defaults` already keeps it from asking.
            quiet=True,
            # Migrations and tasks run code from the template: only the platform's own.
            unsafe=trusted,
            conflict="inline",
        )
    except CopierError as exc:
        hint = "" if trusted else " (only the platform's own URL is trusted with migrations)"
        raise PavedError(f"copier update failed: {exc}{hint}") from exc


def lock_environment(dest: Path) -> None:
    """`uv lock` in `dest`."""
    uv = shutil.which("uv")
    if uv is None:
        raise PavedError("uv is not on PATH: install it, or pass --no-lock and run `uv lock` later")
    run([uv, "lock", "--quiet"], cwd=dest)


def identity(dest: Path) -> list[str]:
    """Commit as the user when git knows them, else as Paved (the commit only holds the render)."""
    known = git(dest, "config", "user.email", check=False)
    if known or os.environ.get("GIT_AUTHOR_EMAIL"):
        return []
    return ["-c", "user.name=Paved", "-c", "user.email=paved@localhost"]
