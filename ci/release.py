"""Cut a platform release: one version for the template, paved-ml, paved and the workflows.

    python3 ci/dev.py run python -m ci.release 0.2.0      # or: --bump patch|minor|major
    python3 ci/dev.py run python -m ci.release --check    # the release tags are sound

A release is an annotated tag `vX.Y.Z` on a commit that sets the packages' versions to X.Y.Z
and moves docs/changelog.md's Unreleased section under `## [X.Y.Z] - <date>`. The command
refuses a dirty tree, an existing tag, a version lower than the packages' and an empty
Unreleased section. The packages' `version` fields are written only by this command (a test
checks they agree); the tag is what copier and the team repos' pins name.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path

from packaging.version import Version
from paved._errors import PavedError
from paved._git import git
from paved._proc import run
from paved.releases import TAG, changelog_section
from paved.repo import require_clean

ROOT = Path(__file__).resolve().parents[1]
CHANGELOG = Path("docs") / "changelog.md"
#: The files whose `version = "..."` line is the release's version.
VERSIONED = (
    Path("libs") / "paved" / "pyproject.toml",
    Path("libs") / "paved-ml" / "pyproject.toml",
)
UNRELEASED = "## [Unreleased]"
_VERSION_LINE = re.compile(r'^version = "([^"]+)"$', re.MULTILINE)


def current_version(repo: Path) -> Version:
    """The version the packages carry now (they agree, or this is an error)."""
    found = {
        path: _VERSION_LINE.search((repo / path).read_text(encoding="utf-8")) for path in VERSIONED
    }
    versions = {path: match[1] if match else "" for path, match in found.items()}
    if len(set(versions.values())) != 1 or not all(versions.values()):
        raise PavedError(f"the packages' versions disagree: {versions}: set them with this command")
    return Version(next(iter(versions.values())))


def bump(version: Version, part: str) -> Version:
    major, minor, patch = version.release[:3]
    if part == "major":
        return Version(f"{major + 1}.0.0")
    if part == "minor":
        return Version(f"{major}.{minor + 1}.0")
    return Version(f"{major}.{minor}.{patch + 1}")


def release(
    repo: Path, version: str | None = None, *, part: str | None = None, today: dt.date | None = None
) -> str:
    """Bump, move the changelog, lock, commit and tag; return the tag."""
    require_clean(repo)
    old = current_version(repo)
    new = Version(version) if version else bump(old, part or "patch")
    if not re.fullmatch(r"\d+\.\d+\.\d+", str(new)):
        raise PavedError(f"version {new} is not X.Y.Z")
    if new < old:  # the packages' version itself is released once, by its first tag
        raise PavedError(f"version {new} goes back from {old}")
    tag = f"v{new}"
    if git(repo, "tag", "--list", tag):
        raise PavedError(f"tag {tag} exists already: releases are never moved")
    changelog = repo / CHANGELOG
    text = changelog.read_text(encoding="utf-8")
    entry = changelog_section(text, "Unreleased")
    if not entry:
        raise PavedError(
            f"{CHANGELOG} has nothing under {UNRELEASED}: say what the release changes"
        )
    date = (today or dt.date.today()).isoformat()
    changelog.write_text(
        text.replace(UNRELEASED, f"{UNRELEASED}\n\n## [{new}] - {date}", 1), encoding="utf-8"
    )
    for path in VERSIONED:
        file = repo / path
        file.write_text(
            _VERSION_LINE.sub(f'version = "{new}"', file.read_text(encoding="utf-8"), 1),
            encoding="utf-8",
        )
    # The workspace members' versions are in the lock: move them, and nothing else.
    run(["uv", "lock", "--quiet"], cwd=repo, timeout=600)
    git(repo, "add", str(CHANGELOG), *map(str, VERSIONED), "uv.lock")
    git(repo, "commit", "--quiet", "-m", f"Release {tag}")
    # verbatim: the entry's "### Added" headings are not comments to strip
    git(repo, "tag", "--annotate", "--cleanup=verbatim", tag, "-m", f"Release {tag}\n\n{entry}")
    check(repo)
    return tag


def check(repo: Path) -> list[str]:
    """Every release tag is annotated and alone on its commit; the newest names the packages'
    version. Returns the problems (raises if there are any)."""
    problems = []
    tags = [name for name in git(repo, "tag", "--list").splitlines() if TAG.match(name)]
    for tag in tags:
        if git(repo, "cat-file", "-t", tag) != "tag":
            problems.append(f"{tag} is a lightweight tag: releases are annotated")
        commit = git(repo, "rev-list", "-n", "1", tag)
        others = [
            name for name in git(repo, "tag", "--points-at", commit).splitlines() if name != tag
        ]
        if others:
            problems.append(
                f"{tag}'s commit also carries {', '.join(others)}: copier may pick either"
            )
    if tags:
        newest = max(tags, key=lambda name: Version(name[1:]))
        released = git(repo, "show", f"{newest}:{VERSIONED[0].as_posix()}")
        match = _VERSION_LINE.search(released)
        if not match or match[1] != newest[1:]:
            problems.append(f"{newest} does not set the packages' version to {newest[1:]}")
    if problems:
        raise PavedError("; ".join(problems))
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", nargs="?", help="X.Y.Z (default: --bump patch)")
    parser.add_argument("--bump", choices=["patch", "minor", "major"])
    parser.add_argument("--check", action="store_true", help="only check the release tags")
    parser.add_argument("--repo", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.check:
            check(args.repo)
            print("release: tags are sound")
        else:
            tag = release(args.repo, args.version, part=args.bump)
            push = f"git push --atomic origin HEAD {tag}"
            print(f"release: tagged {tag}; push the commit and the tag: {push}")
    except PavedError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
