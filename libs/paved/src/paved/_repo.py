"""Reading a team repo: the one place that knows its answers file and its git state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from paved._errors import PavedError
from paved._git import git

__all__ = ["ANSWERS_FILE", "read_answers", "uncommitted"]

#: Where copier records a team repo's answers, template source and release.
ANSWERS_FILE = ".copier-answers.yml"


def read_answers(project: Path) -> dict[str, Any]:
    """The answers file of `project` (its `_src_path`, `_commit` and the answers)."""
    path = project / ANSWERS_FILE
    if not path.is_file():
        raise PavedError(f"{project} has no {ANSWERS_FILE}: it was not generated from a template")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PavedError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PavedError(f"{path} holds no answers")
    return data


def uncommitted(project: Path) -> list[str]:
    """Paths with uncommitted changes (staged, unstaged or untracked, not ignored)."""
    if git(project, "rev-parse", "--is-inside-work-tree", check=False) != "true":
        raise PavedError(f"{project} is not a git repository")
    out = git(project, "status", "--porcelain", "--untracked-files=all")
    return [line.split(maxsplit=1)[-1] for line in out.splitlines() if line.strip()]
