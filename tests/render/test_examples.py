"""The committed examples are exactly what the template renders now."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ci.render_examples import EXAMPLES, examples, render_example
from ci.snapshot import GIT_IDENTITY, ROOT, git

pytestmark = pytest.mark.render

SHA = re.compile(r"\b[0-9a-f]{40}\b")


def normalised(tree: Path) -> dict[str, str]:
    """Every file's text, with the release identifiers (`_commit`, pinned SHAs) blanked."""
    release = str(yaml.safe_load((tree / ".copier-answers.yml").read_text())["_commit"])
    files = {}
    for path in sorted(tree.rglob("*")):
        if path.is_file():
            text = SHA.sub("<sha>", path.read_text(encoding="utf-8"))
            # YAML quotes a short SHA that reads as a number ('6480741').
            text = text.replace(f"'{release}'", release).replace(release, "<release>")
            files[path.relative_to(tree).as_posix()] = text
    return files


@pytest.mark.parametrize("name", sorted(examples()))
def test_example_is_a_fresh_render(platform: tuple[Path, str], tmp_path: Path, name: str) -> None:
    fresh = render_example(examples()[name], tmp_path / name)
    committed = normalised(EXAMPLES / name)
    rendered = normalised(fresh)
    assert sorted(committed) == sorted(rendered), (
        "file sets differ: uv run python -m ci.render_examples"
    )
    stale = [path for path in rendered if committed[path] != rendered[path]]
    assert stale == [], f"stale example files {stale}: uv run python -m ci.render_examples"


def test_there_is_an_example() -> None:
    assert examples(), "examples/ must hold at least one <name>.answers.yml and its render"


def test_no_machine_path_in_committed_files() -> None:
    """Committed files name the canonical platform URL, never a local path or file URL."""
    tracked = git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    pattern = re.compile(r"(file://|/tmp/|/home/|/root/|/Users/)")
    offenders = [
        name
        for name in tracked
        if name.startswith("examples/")
        and (ROOT / name).is_file()
        and pattern.search((ROOT / name).read_text(encoding="utf-8", errors="ignore"))
    ]
    assert offenders == []


def test_examples_hook_keeps_the_index_of_the_commit(
    platform: tuple[Path, str], tmp_path: Path
) -> None:
    """Run from a real git pre-commit hook (git sets GIT_INDEX_FILE for it), the examples
    hook renders from a snapshot of the working tree without touching the commit's index."""
    clone, _ = platform
    repo = tmp_path / "platform"
    git(tmp_path, "clone", "--quiet", str(clone), str(repo))
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ci.render_examples\n')
    hook.chmod(0o755)
    (repo / "README.md").write_text((repo / "README.md").read_text() + "\nOne more line.\n")
    git(repo, "add", "README.md")
    (repo / ".env").write_text("SECRET=do-not-commit\n")  # untracked: forces a snapshot
    staged = git(repo, "ls-files", "--stage")

    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    done = subprocess.run(
        ["git", "commit", "-m", "docs: one more line"],
        cwd=repo,
        env={**env, **GIT_IDENTITY},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rendering a snapshot of the working tree" in done.stdout + done.stderr
    assert git(repo, "ls-files", "--stage") == staged, "the hook rewrote the index"
    assert git(repo, "show", "--name-only", "--format=", "HEAD").splitlines() == ["README.md"]
    assert git(repo, "fsck", "--no-progress") == ""
