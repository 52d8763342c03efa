"""A change proposed by pull request: one commit on a `paved/...` branch, and its pull request.

Deploys (`paved.deploy`) and retraining (`paved.retrain`) change a team repo the same way:
the change is made in a worktree of its own from the repo's current commit, committed
without hooks, and the branch alone is pushed to the repo's `origin` from a bare copy, never
the default branch; with `github` (owner/name) the branch's pull request is opened, or
updated when one is open. Nothing of the repo runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from paved._credentials import AMBIENT, Held, without_credentials
from paved._errors import PavedError
from paved._git import bare_copy, git
from paved.template import identity

__all__ = ["Proposed", "propose_change"]


@dataclass(frozen=True)
class Proposed:
    """The proposal: its branch, its commit ("" when there was nothing to change), its PR."""

    branch: str
    commit: str
    pull_request: str


def propose_change(
    project: Path,
    *,
    branch: str,
    title: str,
    body: str,
    edit: Callable[[Path], Sequence[str]],
    github: str | None = None,
    held: Held = AMBIENT,
) -> Proposed:
    """Commit what `edit` changes in a worktree as `branch`, push it, open or update its PR.

    `edit` is given the worktree (at the repo's current commit) and returns the paths it
    may have changed: only those are committed. Nothing changed is a proposal without a
    commit, and nothing is pushed.
    """
    default = git(project, "branch", "--show-current") or "HEAD"
    if branch == default:
        raise PavedError(f"refusing to propose on the default branch {default}")
    work = Path(tempfile.mkdtemp(prefix="paved-proposal-"))
    tree = work / "tree"
    try:
        git(project, "worktree", "add", "--quiet", "--detach", str(tree), "HEAD")
        paths = list(edit(tree))
        if not paths or not git(tree, "status", "--porcelain", "--", *paths):
            return Proposed(branch, "", "")
        git(tree, "add", "--all", "--", *paths)
        git(
            tree,
            *identity(tree),
            "-c",
            "core.hooksPath=/dev/null",
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            f"{title}\n\n{body}",
        )
        commit = git(tree, "rev-parse", "HEAD")
        _hand_over(project, tree, branch, work / "bare", held)
        pull_request = ""
        if github:
            from paved.fleet.github import GitHub, PullRequests

            client = GitHub({**os.environ, **held.variables})
            pull_request = PullRequests(None).open(client, github, branch, default, title, body)
        return Proposed(branch, commit, pull_request)
    finally:
        git(project, "worktree", "remove", "--force", str(tree), check=False)
        shutil.rmtree(work, ignore_errors=True)


def _hand_over(project: Path, tree: Path, branch: str, bare: Path, held: Held) -> None:
    """Push `tree`'s commit as `branch` (and only it) to the repo's origin, from a bare copy.

    The repo's own refs stay as they were; a repo without an origin gets the branch.
    """
    url = git(project, "remote", "get-url", "--push", "origin", check=False)
    if not url:
        git(project, "branch", "--force", branch, git(tree, "rev-parse", "HEAD"))
        return
    bare_copy(tree, branch, bare, ref="HEAD")
    spec = f"+refs/heads/{branch}:refs/heads/{branch}"
    done = held.git(["push", "--quiet", "--", url, spec], url=url, cwd=bare)
    if done.returncode:
        where = without_credentials(url)
        raise PavedError(f"cannot push {branch} to {where}: {done.stderr.strip()[-2000:]}")
