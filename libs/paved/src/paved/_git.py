"""Running git in a repo, and only in that repo."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from paved._proc import QUICK_TIMEOUT, run

__all__ = ["LOCATION_VARIABLES", "bare_copy", "git", "git_env"]

#: What `git rev-parse --local-env-vars` lists, less the `-c` settings (GIT_CONFIG_*), which
#: are configuration rather than location. A git hook runs with some of these set
#: (GIT_INDEX_FILE, GIT_DIR, GIT_PREFIX) for the repository being committed to: inherited by
#: a git call on another repository, they make it read and write the first one's index.
LOCATION_VARIABLES = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
)


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of this process without inherited repository locations, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if key not in LOCATION_VARIABLES}
    return {**env, **(extra or {})}


def git(cwd: Path, *args: str, check: bool = True, env: Mapping[str, str] | None = None) -> str:
    """`git <args>` in `cwd`: its stripped output; on failure an error, or "" if not `check`.

    The repository is the one at `cwd` (or named by the variables in `env`, which are added
    to this process's environment), never one a calling git hook names in the inherited one.
    """
    done = run(
        ["git", *args],
        cwd=cwd,
        env=git_env(env),
        timeout=QUICK_TIMEOUT,
        check=check,
        failure=f"`git {' '.join(args)}` failed in {cwd}",
    )
    return "" if done.returncode else done.stdout.strip()


def bare_copy(source: Path, branch: str, clean: Path, *, ref: str | None = None) -> None:
    """A new bare repository at `clean` holding `branch` of `source` (shallow or not).

    The branch is made from `ref` of `source` if given (a worktree's HEAD, say). Nothing
    else of `source` comes with it: no hooks, settings or other refs. A push that holds
    credentials is made from here, never from a checkout team code ran in.
    """
    run(["git", "init", "--quiet", "--bare", str(clean)], env=git_env(), timeout=120)
    spec = f"+{ref or f'refs/heads/{branch}'}:refs/heads/{branch}"
    git(clean, "fetch", "--quiet", "--no-tags", "--update-shallow", "--", str(source), spec)
