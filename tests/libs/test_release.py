"""ci/release.py: one version line, cut by one command, on a throwaway copy of this repo."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from paved._errors import PavedError
from paved.releases import changelog_section

from ci.release import CHANGELOG, VERSIONED, check, current_version, release
from ci.snapshot import ROOT, git, snapshot

pytestmark = pytest.mark.libs

DAY = dt.date(2026, 12, 1)


@pytest.fixture
def platform_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "paved"
    snapshot(repo, tag=None)
    return repo


def test_the_packages_carry_one_version() -> None:
    assert (
        str(current_version(ROOT))
        == re.search(r'^version = "(.+)"$', (ROOT / VERSIONED[1]).read_text(), re.MULTILINE)[1]
    )


def test_a_release_bumps_moves_the_changelog_commits_and_tags(platform_repo: Path) -> None:
    entry = changelog_section((platform_repo / CHANGELOG).read_text(), "Unreleased")
    assert entry
    before = git(platform_repo, "rev-parse", "HEAD")
    assert release(platform_repo, "0.2.0", today=DAY) == "v0.2.0"

    assert git(platform_repo, "rev-parse", "HEAD~1") == before
    assert git(platform_repo, "status", "--porcelain") == ""
    assert git(platform_repo, "cat-file", "-t", "v0.2.0") == "tag"  # annotated
    assert git(platform_repo, "tag", "--points-at", "HEAD") == "v0.2.0"
    assert entry in git(platform_repo, "tag", "-l", "--format=%(contents)", "v0.2.0")
    assert str(current_version(platform_repo)) == "0.2.0"
    text = (platform_repo / CHANGELOG).read_text()
    assert changelog_section(text, "0.2.0") == entry
    assert changelog_section(text, "Unreleased") == ""
    assert "## [0.2.0] - 2026-12-01" in text
    lock = (platform_repo / "uv.lock").read_text()
    assert re.search(r'name = "paved"\nversion = "0.2.0"', lock)
    check(platform_repo)

    # Nothing new to say, an existing tag, a version going back: refused, nothing changes.
    head = git(platform_repo, "rev-parse", "HEAD")
    for version, part, message in (
        (None, "patch", "nothing under ## \\[Unreleased\\]"),
        ("0.2.0", None, "tag v0.2.0 exists already"),
        ("0.1.5", None, "goes back from 0.2.0"),
    ):
        with pytest.raises(PavedError, match=message):
            release(platform_repo, version, part=part, today=DAY)
        assert git(platform_repo, "rev-parse", "HEAD") == head
        assert git(platform_repo, "status", "--porcelain") == ""


def test_a_dirty_tree_is_refused_and_left_alone(platform_repo: Path) -> None:
    (platform_repo / "README.md").write_text("edited\n")
    head = git(platform_repo, "rev-parse", "HEAD")
    with pytest.raises(PavedError, match=r"uncommitted changes \(README.md"):
        release(platform_repo, "0.2.0", today=DAY)
    assert git(platform_repo, "rev-parse", "HEAD") == head
    assert git(platform_repo, "tag") == ""
    assert git(platform_repo, "status", "--porcelain") == "M README.md"


def test_check_finds_a_second_tag_on_a_release_commit(platform_repo: Path) -> None:
    release(platform_repo, "0.2.0", today=DAY)
    git(platform_repo, "tag", "0.2.0")  # PEP 440 too: copier could take it instead
    with pytest.raises(PavedError, match=r"v0\.2\.0's commit also carries 0\.2\.0"):
        check(platform_repo)
    git(platform_repo, "tag", "--delete", "0.2.0")
    git(platform_repo, "tag", "v0.3.0")  # lightweight
    with pytest.raises(PavedError, match=r"v0\.3\.0 is a lightweight tag"):
        check(platform_repo)
