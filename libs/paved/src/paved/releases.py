"""The platform's releases: the one module that knows what a release is.

A release is an annotated tag `vX.Y.Z` of the platform repo (cut by `ci/release.py`); its
changelog section is `## [X.Y.Z] - <date>` in docs/changelog.md, and the migrations it runs
are the `_migrations` of its copier.yml. Update, adopt, status, the fleet and the release
script ask this module for tags, the latest release, a pick, a comparison, the notes and
the fleet's branch name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from packaging.version import InvalidVersion, Version

from paved._errors import PavedError
from paved._git import git_env
from paved._proc import run

__all__ = [
    "TAG",
    "base_version",
    "changelog_section",
    "compare",
    "latest",
    "migrations",
    "pick_release",
    "release_commits",
    "release_notes",
    "release_version",
    "update_branch",
]

#: A release tag: `v` and three numbers.
TAG = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
_SECTION = re.compile(r"^## \[", re.MULTILINE)


def release_version(tag: str) -> Version:
    """The version a release tag names (`v1.2.0` -> 1.2.0)."""
    return Version(tag.removeprefix("v"))


def base_version(release: str) -> Version:
    """The release a `_commit` stands on: `v1.2.0` and `v1.2.0-3-gabc1234` are 1.2.0."""
    try:
        return Version(release.removeprefix("v").split("-", 1)[0])
    except InvalidVersion as exc:
        raise PavedError(f"_commit {release!r} names no release: update it with copier") from exc


def release_commits(source: str) -> dict[str, str]:
    """The release tags of `source`, oldest first, and the commit each names.

    One `git ls-remote`, no clone; an annotated tag's commit is its peeled (`^{}`) entry.
    """
    command = ["git", "ls-remote", "--tags", "--", source]
    out = run(command, env=git_env(), timeout=120).stdout
    commits: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        name = ref.removeprefix("refs/tags/")
        if name.endswith("^{}"):
            commits[name.removesuffix("^{}")] = sha
        else:
            commits.setdefault(name, sha)
    releases = sorted((tag for tag in commits if TAG.match(tag)), key=release_version)
    return {tag: commits[tag] for tag in releases}


def latest(releases: Mapping[str, str] | list[str], source: str) -> str:
    """The newest of `releases` (oldest first, as `release_commits` gives them)."""
    names = list(releases)
    if not names:
        raise PavedError(f"{source} has no release tags (vX.Y.Z)")
    return names[-1]


def pick_release(source: str, to: str | None) -> tuple[str, dict[str, str]]:
    """Release `to` of `source` (default: the latest), with every release's commit.

    A source without release tags, or a `to` that is not one of them, is a PavedError.
    """
    commits = release_commits(source)
    target = to or latest(commits, source)
    if target not in commits:
        raise PavedError(f"{target} is not a release of {source}: choose from {', '.join(commits)}")
    return target, commits


def compare(current: str, target: str) -> Literal["current", "newer", "older"]:
    """Whether `target` is the release `current` stands on, a newer one or an older one.

    `current` is a `_commit` (`v1.2.0`, or `v1.2.0-3-gabc1234` for a commit after it);
    nothing ever moves a repo to an "older" release.
    """
    if current == target:
        return "current"
    return "older" if release_version(target) < base_version(current) else "newer"


def changelog_section(text: str, version: str) -> str:
    """The body of the changelog section of `version` ('Unreleased' for the next one)."""
    heading = "## [Unreleased]" if version == "Unreleased" else f"## [{version}]"
    start = text.find(heading)
    if start < 0:
        return ""
    body = text[text.index("\n", start) + 1 :]
    following = _SECTION.search(body)
    return (body[: following.start()] if following else body).strip()


def release_notes(changelog: str, base: Version, target: str) -> str:
    """The changelog's sections of the releases after `base` up to `target`, newest first."""
    wanted = []
    for section in re.split(r"^(?=## \[)", changelog, flags=re.MULTILINE):
        match = re.match(r"## \[(\d+\.\d+\.\d+)\]", section)
        if match and base < Version(match[1]) <= release_version(target):
            wanted.append(section.strip())
    return "\n\n".join(wanted)


def migrations(config: Mapping[str, Any], base: Version, target: str) -> list[str]:
    """The releases after `base` up to `target` whose migrations a copier.yml declares."""
    return sorted(
        {
            str(entry["version"])
            for entry in config.get("_migrations") or []
            if isinstance(entry, dict)
            and "version" in entry
            and base < release_version(str(entry["version"])) <= release_version(target)
        },
        key=release_version,
    )


def update_branch(release: str) -> str:
    """The branch a fleet update to `release` goes on (never the default branch)."""
    return f"paved/update-{release}"
