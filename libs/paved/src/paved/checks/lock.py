"""Is `uv.lock` current with `pyproject.toml`? Read from the files alone, without uv or network.

uv records in the lock what it locked from: the project's `requires-python`, and under the
project's own package its `requires-dist` and `requires-dev` as written. A lock is stale when
those differ from the pyproject's (what `uv lock --check` then refuses, and CI's `uv sync
--locked` with it). Requirements are compared as parsed (name, extras, specifiers, marker,
git source and revision), so spelling differences that uv normalises do not count.
"""

from __future__ import annotations

import tomllib
import urllib.parse
from typing import Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from paved.repo import read_lock

__all__ = ["lock_drift"]

_Key = tuple[str, frozenset[str], str, str, str]


def lock_drift(pyproject: dict[str, Any], lock_text: str) -> list[str]:
    """What pyproject declares that the lock did not lock from (empty when current)."""
    project = pyproject.get("project", {})
    name = canonicalize_name(str(project.get("name", "")))
    try:
        lock, packages = read_lock(lock_text, [name])
    except tomllib.TOMLDecodeError as exc:
        return [f"uv.lock does not parse: {exc}"]
    root = next(
        (
            package
            for package in packages
            if {"editable", "virtual"} & set(package.get("source", {}))
        ),
        None,
    )
    if root is None:
        return [f"uv.lock does not lock the project {name or '(unnamed)'}"]
    drift = []
    declared_python = SpecifierSet(str(project.get("requires-python", "")))
    if declared_python != SpecifierSet(str(lock.get("requires-python", ""))):
        drift.append(
            f"requires-python {declared_python} (uv.lock has {lock.get('requires-python')})"
        )
    sourced = set(pyproject.get("tool", {}).get("uv", {}).get("sources", {}))
    metadata = root.get("metadata", {})
    groups = {"dependencies": (project.get("dependencies", []), metadata.get("requires-dist", []))}
    locked_groups = metadata.get("requires-dev", {})
    for group, declared in (pyproject.get("dependency-groups") or {}).items():
        groups[f"group {group}"] = (declared, locked_groups.get(group, []))
    for group in set(locked_groups) - set(pyproject.get("dependency-groups") or {}):
        groups[f"group {group}"] = ([], locked_groups[group])
    for label, (declared, locked) in groups.items():
        wanted = {_declared_key(entry, sourced) for entry in declared if isinstance(entry, str)}
        have = {_locked_key(entry, sourced) for entry in locked}
        drift += [f"{label}: {_show(key)} is not locked" for key in sorted(wanted - have)]
        drift += [f"{label}: uv.lock still has {_show(key)}" for key in sorted(have - wanted)]
    return drift


def _declared_key(text: str, sourced: set[str]) -> _Key:
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return (text, frozenset(), "", "", "unparsable")
    name = canonicalize_name(requirement.name)
    source = ""
    if requirement.url and name not in sourced:
        source = _git_source(requirement.url.removeprefix("git+"))
    return (
        name,
        frozenset(requirement.extras),
        "" if name in sourced else str(SpecifierSet(str(requirement.specifier))),
        str(requirement.marker or ""),
        source,
    )


def _locked_key(entry: dict[str, Any], sourced: set[str]) -> _Key:
    name = canonicalize_name(str(entry.get("name", "")))
    source = ""
    if "git" in entry and name not in sourced:
        parts = urllib.parse.urlsplit(str(entry["git"]))
        query = urllib.parse.parse_qs(parts.query)
        base = urllib.parse.urlunsplit(parts._replace(query="", fragment=""))
        source = f"{base}@{query.get('rev', [''])[0]}#{query.get('subdirectory', [''])[0]}"
    marker = entry.get("marker")
    return (
        name,
        frozenset(entry.get("extras", [])),
        "" if name in sourced else str(SpecifierSet(str(entry.get("specifier", "")))),
        str(Marker(marker)) if marker else "",
        source,
    )


def _git_source(url: str) -> str:
    """`https://host/repo.git@REV#subdirectory=X` -> `https://host/repo.git@REV#X`."""
    parts = urllib.parse.urlsplit(url)
    path, _, rev = parts.path.rpartition("@") if "@" in parts.path else (parts.path, "", "")
    fragment = urllib.parse.parse_qs(parts.fragment).get("subdirectory", [""])[0]
    base = urllib.parse.urlunsplit(parts._replace(path=path, query="", fragment=""))
    return f"{base}@{rev}#{fragment}"


def _show(key: _Key) -> str:
    name, extras, specifier, marker, source = key
    text = name + (f"[{','.join(sorted(extras))}]" if extras else "") + specifier
    if source:
        text += f" @ {source}"
    return text + (f"; {marker}" if marker else "")
