"""paved.template's copier calls: git asked for core.fileMode once, with copier's outcome."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from paved.template import copier_update, render

from ci.snapshot import GIT_IDENTITY
from tests.lib.helpers import commit_all

pytestmark = pytest.mark.libs

ANSWERS = "{{ _copier_conf.answers_file }}.jinja"
FILES = [f"file{i}.txt" for i in range(6)]


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def template(tmp_path: Path) -> Path:
    """A template repo: v1 with a plain run.sh, v2 with an executable one."""
    source = tmp_path / "template"
    source.mkdir()
    (source / "copier.yml").write_text("name:\n  type: str\n  default: demo\n")
    (source / ANSWERS).write_text("{{ _copier_answers | to_nice_yaml }}")
    for name in FILES:
        (source / name).write_text(f"{name} of {{{{ name }}}}\n")
    (source / "run.sh.jinja").write_text("#!/bin/sh\necho {{ name }}\n")
    git(source, "init", "--quiet", "--initial-branch=main")
    commit_all(source, {**os.environ, **GIT_IDENTITY}, "v1")
    git(source, "tag", "v1")
    (source / "run.sh.jinja").chmod(0o755)
    commit_all(source, {**os.environ, **GIT_IDENTITY}, "v2")
    git(source, "tag", "v2")
    return source


def file_mode_asks(trace: Path) -> int:
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    return sum(
        1
        for event in events
        if event.get("event") == "start" and "core.fileMode" in event.get("argv", [])
    )


def test_git_is_asked_once_per_folder_and_the_executable_bit_still_reaches_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = template(tmp_path)
    trace = tmp_path / "trace.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    dest = tmp_path / "team"
    render(str(source), dest, {}, vcs_ref="v1", defaults=True)
    assert file_mode_asks(trace) == 1  # copier itself asks once per rendered file (8 here)
    monkeypatch.delenv("GIT_TRACE2_EVENT")

    # A repo where git ignores file modes: copier's step must still put the bit in the index.
    git(dest, "init", "--quiet", "--initial-branch=main")
    git(dest, "config", "core.fileMode", "false")
    commit_all(dest, {**os.environ, **GIT_IDENTITY}, "generated at v1")
    assert git(dest, "ls-files", "--stage", "run.sh").startswith("100644")
    copier_update(dest, "v2", trusted=True)
    assert git(dest, "ls-files", "--stage", "run.sh").startswith("100755")
    assert (dest / "run.sh").stat().st_mode & 0o111
