"""Shared fixtures: a throwaway platform release, and renders of it under the canonical URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from copier import run_copy
from paved.constants import TELEMETRY_OFF
from paved.template import PLATFORM_URL
from plumbum import local

from ci.golden_path import DEMO_ANSWERS
from ci.snapshot import LOCK_ENV, canonical_env, snapshot
from tests.lib.helpers import RELEASE, Render


@pytest.fixture(scope="session", autouse=True)
def private_copier_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Copier's template mirrors in this session's own folder, not the machine's.

    Copier keeps one mirror per template URL; the tests map the canonical URL to a different
    platform clone in each session (each worker, when they run in parallel), so a shared
    mirror would serve one session's template to another, or fail while both fetch into it.
    """
    cache = str(tmp_path_factory.mktemp("copier-cache"))
    with pytest.MonkeyPatch.context() as patch, local.env(COPIER_CACHE_DIR=cache):
        patch.setenv("COPIER_CACHE_DIR", cache)
        yield


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A release of the working tree (tagged v0.1.0), served under the canonical URL.

    Yields (clone, commit sha). While it is active, git (so copier and uv) fetches the
    canonical platform URL from the clone.
    """
    clone = tmp_path_factory.mktemp("platform")
    sha = snapshot(clone, tag=RELEASE)
    extra = {**canonical_env(clone), **TELEMETRY_OFF, **LOCK_ENV}
    # copier runs git through plumbum, whose environment is a copy taken at import time.
    with pytest.MonkeyPatch.context() as patch, local.env(**extra):
        for key, value in extra.items():
            patch.setenv(key, value)
        yield clone, sha


@pytest.fixture
def render(platform: tuple[Path, str], tmp_path: Path) -> Render:
    """Render the template from the canonical URL with the given answers; return the repo."""

    def _render(dest: Path | None = None, **answers: Any) -> Path:
        dest = dest or tmp_path / "repo"
        run_copy(
            PLATFORM_URL,
            dest,
            data={**DEMO_ANSWERS, **answers},
            defaults=True,
            quiet=True,
            unsafe=False,
        )
        return dest

    return _render


#: The tiers, the longest-running first. `python3 ci/dev.py test` spreads the modules over one
#: worker per core (pytest-xdist, a module's tests on one worker, so that its fixtures are set
#: up once): handing out the long modules first keeps the workers' loads even at the end.
TIER_ORDER = ("workflows", "image", "project", "update", "libs", "render")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the modules by tier (TIER_ORDER), keeping each module's tests in file order."""

    def rank(item: pytest.Item) -> int:
        marks = {mark.name for mark in item.iter_markers()}
        return next((i for i, tier in enumerate(TIER_ORDER) if tier in marks), len(TIER_ORDER))

    modules: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        modules[module] = min(modules.get(module, len(TIER_ORDER)), rank(item))
    order = {module: i for i, module in enumerate(sorted(modules, key=modules.__getitem__))}
    items.sort(key=lambda item: order[item.nodeid.split("::", 1)[0]])


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
    with pytest.MonkeyPatch.context() as patch:
        for key, value in FOREIGN_CI.items():
            patch.setenv(key, value)
        yield
