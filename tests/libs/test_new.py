"""`paved new` and `paved --version`, through the real CLI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import paved
import pytest
import yaml

from ci.snapshot import PLATFORM_URL
from tests.lib import helpers
from tests.lib.helpers import RELEASE

pytestmark = pytest.mark.libs


def test_version() -> None:
    result = subprocess.run(["paved", "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"paved {paved.__version__}"


def test_new_generates_a_committed_repo(platform: tuple[Path, str], tmp_path: Path) -> None:
    dest = tmp_path / "churn"
    result = helpers.paved(
        os.environ,
        "new",
        str(dest),
        "--defaults",
        "--no-lock",
        "-d",
        "project_name=Churn",
        "-d",
        "team=growth",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text())
    assert answers["_src_path"] == PLATFORM_URL and answers["_commit"] == RELEASE

    def git(*a):
        return subprocess.run(
            ["git", *a], cwd=dest, capture_output=True, text=True, check=True
        ).stdout

    assert git("status", "--porcelain") == ""
    assert git("branch", "--show-current").strip() == "main"
    assert ".copier-answers.yml" in git("ls-files").split()
    assert git("log", "--format=%s").strip() == "Generate from the Paved template"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-d", "project_name=Churn", "-d", "team=Growth Team"],
            "Validation error for question 'team'",
        ),
        (
            ["-d", "project_name=Churn", "-d", "team=growth", "-d", "package_name=os"],
            "standard-library",
        ),
        (["-d", "project_name"], "--data 'project_name': expected NAME=VALUE"),
    ],
)
def test_bad_answers_leave_nothing(
    platform: tuple[Path, str], tmp_path: Path, args: list[str], message: str
) -> None:
    dest = tmp_path / "churn"
    result = helpers.paved(
        os.environ, "new", str(dest), "--defaults", "--no-lock", *args, cwd=tmp_path
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not dest.exists()


def test_refuses_a_non_empty_folder(platform: tuple[Path, str], tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = helpers.paved(
        os.environ,
        "new",
        str(tmp_path),
        "--defaults",
        "-d",
        "project_name=X",
        "-d",
        "team=t",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "already exists and is not an empty folder" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    ("src", "message"),
    [
        ("file:///srv/paved", "use git+file:///srv/paved"),
        ("/srv/paved/templates/ml-project", "a folder inside the platform repo"),
        ("git+file:///srv/paved/templates", "a folder inside the platform repo"),
    ],
)
def test_refuses_sources_that_break_updates(tmp_path: Path, src: str, message: str) -> None:
    result = helpers.paved(
        os.environ, "new", str(tmp_path / "x"), "--src", src, "--defaults", cwd=tmp_path
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "x").exists()


def test_new_project_api_leaves_an_existing_empty_dest_empty(
    platform: tuple[Path, str], tmp_path: Path
) -> None:
    with pytest.raises(paved.PavedError):
        paved.new_project(
            tmp_path, data={"project_name": "X", "team": "Bad Team"}, defaults=True, lock=False
        )
    assert tmp_path.is_dir() and list(tmp_path.iterdir()) == []
