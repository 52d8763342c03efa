"""Shared fixtures: a throwaway platform release, and renders of it under the canonical URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from copier import run_copy
from helpers import BASE_ANSWERS, RELEASE, Render
from plumbum import local
from snapshot import LOCK_ENV, PLATFORM_URL, QUIET_ENV, canonical_env, snapshot


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A release of the working tree (tagged v0.1.0), served under the canonical URL.

    Yields (clone, commit sha). While it is active, git (so copier and uv) fetches the
    canonical platform URL from the clone.
    """
    clone = tmp_path_factory.mktemp("platform")
    sha = snapshot(clone, tag=RELEASE)
    extra = {**canonical_env(clone), **QUIET_ENV, **LOCK_ENV}
    saved = dict(os.environ)
    os.environ.update(extra)
    # copier runs git through plumbum, whose environment is a copy taken at import time.
    with local.env(**extra):
        try:
            yield clone, sha
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture
def render(platform: tuple[Path, str], tmp_path: Path) -> Render:
    """Render the template from the canonical URL with the given answers; return the repo."""

    def _render(dest: Path | None = None, **answers: Any) -> Path:
        dest = dest or tmp_path / "repo"
        run_copy(
            PLATFORM_URL,
            dest,
            data={**BASE_ANSWERS, **answers},
            defaults=True,
            quiet=True,
            unsafe=False,
        )
        return dest

    return _render


#: A CI run of this repository (as on GitHub), which no team-repo step may take as its own.
FOREIGN_CI = {
    "GITHUB_ACTIONS": "true",
    "CI": "true",
    "GITHUB_SHA": "f0" * 20,
    "GITHUB_REF": "refs/heads/platform-feature",
    "GITHUB_REPOSITORY": "acme/paved",
    "GITHUB_REPOSITORY_OWNER": "acme",
    "GITHUB_RUN_ID": "1",
}


@pytest.fixture(scope="module")
def foreign_ci_context() -> Iterator[None]:
    """Run a module's tests as if this repo's own CI were running them on GitHub."""
    saved = {key: os.environ.get(key) for key in FOREIGN_CI}
    os.environ.update(FOREIGN_CI)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
