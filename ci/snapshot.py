"""Throwaway platform releases, for the demo, the tests and the example renders.

A generated repo must record the canonical platform URL, never a path of this machine,
while everything is fetched from a local checkout. `snapshot()` commits the checkout's
working tree (tracked and untracked, minus what .gitignore drops) into a scratch git
repo and tags it; `canonical_env()` returns the git settings that make the canonical URL
resolve to that snapshot, which both copier and uv honour.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

from paved._git import git_env
from paved.template import PLATFORM_URL

ROOT = Path(__file__).resolve().parents[1]
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Paved CI",
    "GIT_AUTHOR_EMAIL": "ci@paved.invalid",
    "GIT_COMMITTER_NAME": "Paved CI",
    "GIT_COMMITTER_EMAIL": "ci@paved.invalid",
}


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        # Only the repositories named here: a git hook's GIT_INDEX_FILE or GIT_DIR, inherited,
        # would make these calls write the index of the repository being committed to.
        env=git_env({**GIT_IDENTITY, **(env or {})}),
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}:\n{result.stderr}")
    return result.stdout.strip()


def snapshot(dest: Path, *, tag: str | None = "v0.1.0", source: Path = ROOT) -> str:
    """Commit `source`'s working tree as a new repo at `dest`; tag it; return the commit SHA."""
    dest.mkdir(parents=True, exist_ok=True)
    git(dest, "init", "--quiet", "--initial-branch=main")
    work = {"GIT_DIR": str(dest / ".git"), "GIT_WORK_TREE": str(source)}
    git(source, "add", "--all", env=work)
    git(source, "commit", "--quiet", "--no-verify", "-m", "platform snapshot", env=work)
    git(dest, "checkout", "--quiet", "--force", "main")
    if tag:
        git(dest, "tag", "--annotate", tag, "-m", f"Release {tag}")
    return git(dest, "rev-parse", "HEAD")


def canonical_env(clone: Path, url: str = PLATFORM_URL) -> dict[str, str]:
    """Git settings (as environment) that fetch `url` from `clone` instead."""
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{clone.resolve().as_uri()}.insteadOf",
        "GIT_CONFIG_VALUE_0": url,
    }


def _lock_env() -> dict[str, str]:
    """Resolve team repos as of the platform's own lock date ([tool.uv] exclude-newer)."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    date = settings.get("tool", {}).get("uv", {}).get("exclude-newer")
    return {"UV_EXCLUDE_NEWER": str(date)} if date else {}


#: For every team repo the tests, the demo and the benchmarks generate and lock.
LOCK_ENV = _lock_env()
