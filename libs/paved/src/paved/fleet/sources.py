"""Where a fleet's team repos are: a folder tree, a manifest of git URLs, a GitHub organisation.

paved status ~/src            every folder under it with a .copier-answers*.yml
paved status fleet.yml        a YAML list: git URLs, or {url, branch, name} maps
paved status github:acme      the organisation's repositories (a token is needed)

A manifest may also be a mapping: `repos:` (that list) and `waves:`, the rollout's waves in
order, each a list of repo names, the last one may be `"*"` (every repo not in an earlier
wave). Repos no wave names form a last wave, `rest`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from paved._credentials import AMBIENT, Held
from paved._errors import PavedError
from paved._git import git
from paved.fleet.github import GitHub

__all__ = [
    "RepoRef",
    "Wave",
    "branch_tip",
    "clone_shallow",
    "find_repos",
    "find_waves",
    "local_tip",
    "push_url",
]

#: Folders never searched for answers files.
_SKIP = {".git", ".venv", "node_modules", ".tox", ".nox", ".dvc", "mlruns", ".bentoml"}


@dataclass(frozen=True)
class RepoRef:
    """A team repo: a local working copy (`path`) or a remote (`url`, its default branch)."""

    name: str
    path: Path | None = None
    url: str | None = None
    branch: str | None = None
    #: owner/name when the repo came from a GitHub organisation (pull requests, files).
    github: str | None = None
    #: Why this entry cannot be used (a bad name): it fails alone, the others go on.
    problem: str = ""


@dataclass(frozen=True)
class Wave:
    """One wave of a rollout: its name and the repos in it, in the manifest's order."""

    name: str
    repos: tuple[str, ...]


def find_waves(target: str) -> list[Wave]:
    """The waves `target`'s manifest names, in order; one wave `all` for any other target.

    A PavedError names what is wrong: a wave naming a repo the manifest does not list, a
    repo in two waves, `"*"` before the last wave, or a wave that is not a list.
    """
    names = [ref.name for ref in find_repos(target)]
    path = Path(target).expanduser()
    document = _load(path) if path.is_file() else None
    declared = document.get("waves") if isinstance(document, dict) else None
    if declared is None:
        return [Wave("all", tuple(names))]
    if not isinstance(declared, dict) or not declared:
        raise PavedError(f"{path}: `waves` is a mapping of wave names to lists of repo names")
    waves: list[Wave] = []
    taken: dict[str, str] = {}
    for number, (wave, listed) in enumerate(declared.items(), start=1):
        if listed == "*" and number != len(declared):
            raise PavedError(f"{path}: wave {wave!r} takes every other repo: make it last")
        members = [name for name in names if name not in taken] if listed == "*" else listed
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise PavedError(f"{path}: wave {wave!r} is not a list of repo names")
        unknown = [member for member in members if member not in names]
        if unknown:
            raise PavedError(f"{path}: wave {wave!r} names {', '.join(unknown)}: not in `repos`")
        for member in members:
            if member in taken:
                raise PavedError(f"{path}: {member} is in the waves {taken[member]!r} and {wave!r}")
            taken[member] = str(wave)
        waves.append(Wave(str(wave), tuple(members)))
    rest = tuple(name for name in names if name not in taken)
    if rest:
        if any(wave.name == "rest" for wave in waves):
            raise PavedError(f"{path}: repos no wave names would form `rest`, a wave already")
        waves.append(Wave("rest", rest))
    return waves


def find_repos(target: str) -> list[RepoRef]:
    """The repos `target` names (a folder, a manifest file or `github:ORG`), by name."""
    if target.startswith("github:"):
        org = target.removeprefix("github:").strip("/")
        if not org or "/" in org:
            raise PavedError(f"{target!r}: name an organisation, as github:ORG")
        return [
            RepoRef(
                name=repo.full_name.split("/", 1)[1],
                url=repo.clone_url,
                branch=repo.default_branch,
                github=repo.full_name,
            )
            for repo in GitHub().org_repos(org)
        ]
    path = Path(target).expanduser()
    if path.is_dir():
        return _tree(path)
    if path.is_file():
        return _manifest(path)
    raise PavedError(f"{target!r} is neither a folder, a manifest file nor github:ORG")


def _tree(root: Path) -> list[RepoRef]:
    found: list[RepoRef] = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if name not in _SKIP)
        if any(name.startswith(".copier-answers") and name.endswith(".yml") for name in files):
            here = Path(folder)
            name = here.relative_to(root).as_posix() if here != root else here.name
            found.append(RepoRef(name=name, path=here.absolute()))
    return found


def _load(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PavedError(f"{path} is not valid YAML: {exc}") from exc


def _manifest(path: Path) -> list[RepoRef]:
    entries = _load(path)
    if isinstance(entries, dict):  # the mapping form: `repos:` and `waves:`
        entries = entries.get("repos")
    if not isinstance(entries, list):
        raise PavedError(f"{path}: a manifest is a YAML list of git URLs or {{url, branch}} maps")
    repos = []
    for number, item in enumerate(entries, start=1):
        entry = {"url": item} if isinstance(item, str) else item
        if not isinstance(entry, dict) or not (
            isinstance(entry.get("url"), str) or isinstance(entry.get("path"), str)
        ):
            raise PavedError(f"{path}: entry {number} names no url (or path)")
        branch = str(entry["branch"]) if entry.get("branch") else None
        if isinstance(entry.get("path"), str):  # a local working copy, relative to the manifest
            local = (path.parent / Path(entry["path"]).expanduser()).absolute()
            name = str(entry.get("name") or local.name)
            repos.append(RepoRef(name=name, path=local, branch=branch))
            continue
        url = entry["url"]
        name = str(entry.get("name") or url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git"))
        repos.append(RepoRef(name=name, url=url, branch=branch))
    repos = [
        ref if _NAME.fullmatch(ref.name) else replace(ref, problem=_bad_name(ref.name, number))
        for number, ref in enumerate(repos, start=1)
    ]
    names = [repo.name for repo in repos]
    if twice := sorted({name for name in names if names.count(name) > 1}):
        raise PavedError(f"{path}: two entries are named {', '.join(twice)}: give them `name:`")
    return repos


#: A repo's name: segments of letters, digits, `.`, `_` and `-` joined by `/`, each starting
#: with a letter or digit (so never `.` or `..`).
_NAME = re.compile(r"\w[\w.-]*(/\w[\w.-]*)*", re.ASCII)


def _bad_name(name: str, number: int) -> str:
    return (
        f"entry {number}: the name {name!r} is not a repo name (letters, digits, `.`, `_`, `-`, "
        "segments joined by `/`, none `.` or `..`): give it a `name:`"
    )


def clone_shallow(ref: RepoRef, dest: Path, held: Held = AMBIENT) -> None:
    """The tip of `ref`'s default branch (or `ref.branch`) at `dest`, one commit deep."""
    args = ["clone", "--quiet", "--depth", "1", "--no-tags"]
    if ref.branch:
        args += ["--branch", ref.branch]
    done = held.git([*args, "--", str(ref.url), str(dest)], url=str(ref.url))
    if done.returncode:
        detail = (done.stderr.strip().splitlines() or ["git clone failed"])[-1]
        raise PavedError(f"cannot clone {ref.url}: {detail}")


def branch_tip(ref: RepoRef, branch: str, held: Held = AMBIENT) -> str:
    """The commit `branch` is at where the fleet pushes it ("" if it is not there).

    That is the remote for a URL; for a local repo, its origin, or the repo itself when it
    has no origin. Only `refs/heads/<branch>` itself counts (git's pattern would also match
    `refs/heads/wip/<branch>`).
    """
    wanted = f"refs/heads/{branch}"
    url = push_url(ref)
    if not url and ref.path is not None:
        return local_tip(ref.path, branch)
    heads = held.git(["ls-remote", "--heads", "--", url, wanted], url=url)
    if heads.returncode:
        raise PavedError(f"cannot list the branches of {url}: {heads.stderr.strip()[-2000:]}")
    found = [line.split("\t") for line in heads.stdout.splitlines()]
    return next((sha for sha, name in found if name == wanted), "")


def push_url(ref: RepoRef) -> str:
    """Where the fleet pushes `ref`'s update branch: its URL, or a local repo's origin.

    "" for a local repo without an origin: its branch stays in it.
    """
    if ref.path is None:
        return str(ref.url or "")
    return git(ref.path, "remote", "get-url", "origin", check=False)


def local_tip(repo: Path, branch: str) -> str:
    """The commit the local `branch` of `repo` is at ("" if it has none)."""
    name = f"refs/heads/{branch}^{{commit}}"
    return git(repo, "rev-parse", "--verify", "--quiet", name, check=False)
