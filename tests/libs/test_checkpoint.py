"""paved.template.Checkpoint: a failed update or adoption leaves the repo as it stood."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from paved._git import git as paved_git
from paved.template import Checkpoint

from ci.snapshot import GIT_IDENTITY
from tests.lib.helpers import commit_all

pytestmark = pytest.mark.libs

IDENTITY = {**os.environ, **GIT_IDENTITY}


def git(repo: Path, *args: str) -> str:
    """`git <args>` in `repo`: its output, "" when it fails (a conflicted merge does)."""
    return paved_git(repo, *args, check=False, env=GIT_IDENTITY)


def state(repo: Path) -> dict[str, object]:
    """What a user would see of the repo: HEAD, branch, branches, status, every file."""
    files = {
        path.relative_to(repo).as_posix(): path.read_bytes()
        for path in repo.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(repo).parts
    }
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "--quiet", "--short", "HEAD"),
        "branches": git(repo, "branch", "--format=%(refname:short)"),
        "status": git(repo, "status", "--porcelain", "--ignored", "--untracked-files=all"),
        "files": files,
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "team"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / ".gitignore").write_text("*.rej\nscratch/\n")
    (repo / "train.py").write_text("print('train')\n")
    commit_all(repo, IDENTITY, "first")
    git(repo, "switch", "--quiet", "-c", "other")
    (repo / "train.py").write_text("print('other')\n")
    commit_all(repo, IDENTITY, "other")
    git(repo, "switch", "--quiet", "main")
    (repo / "train.py").write_text("print('main')\n")
    commit_all(repo, IDENTITY, "main")
    # The team's ignored files, and a reject file of their own, are theirs to keep.
    (repo / "scratch").mkdir()
    (repo / "scratch" / "notes.txt").write_text("mine\n")
    (repo / "old.rej").write_text("kept\n")
    return repo


@pytest.mark.parametrize("detached", [False, True])
def test_restore_drops_everything_a_failed_change_did(repo: Path, detached: bool) -> None:
    if detached:
        git(repo, "switch", "--quiet", "--detach", "HEAD")
    before = state(repo)
    checkpoint = Checkpoint.take(repo)
    # What an adoption or update leaves when it fails half-way: a new branch with a
    # conflicted merge in progress, edits, new files, and copier's reject files.
    git(repo, "switch", "--quiet", "-c", "paved/adopt")
    git(repo, "merge", "--no-commit", "other")
    assert git(repo, "rev-parse", "--verify", "--quiet", "MERGE_HEAD")
    assert "<<<<<<<" in (repo / "train.py").read_text()
    (repo / "new.py").write_text("new\n")
    (repo / "deep" / "er").mkdir(parents=True)
    (repo / "deep" / "er" / "file.txt").write_text("new\n")
    (repo / "train.py.rej").write_text("@@ rejected hunk\n")
    (repo / ".gitignore").write_text("changed\n")
    assert state(repo) != before

    checkpoint.restore()
    assert state(repo) == before
