"""Team repos as untrusted input to `paved status` and the fleet: each case failed once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from paved._errors import PavedError
from paved.fleet.sources import RepoRef, branch_tip
from paved.releases import release_commits

from tests.lib.helpers import ALIAS_BOMB, paved

pytestmark = pytest.mark.libs

GIT = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@example.org",
    "GIT_COMMITTER_NAME": "Ada",
    "GIT_COMMITTER_EMAIL": "ada@example.org",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def repo_with_answers(path: Path, answers: str) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    (path / ".copier-answers.yml").write_text(answers)
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "answers")
    return path


def paved_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return paved({**os.environ, "GIT_TERMINAL_PROMPT": "0"}, *args, cwd=cwd)


def test_a_template_source_is_never_read_as_a_git_option(tmp_path: Path) -> None:
    # `git ls-remote --tags <source>` without `--` took this source for --upload-pack and
    # ran it against the origin of the folder paved ran in.
    marker = tmp_path / "ran"
    answers = f'_src_path: "--upload-pack=touch {marker};git-upload-pack"\n_commit: v0.1.0\n'
    repo_with_answers(tmp_path / "fleet" / "team", answers)
    here = tmp_path / "here"
    origin = repo_with_answers(tmp_path / "origin", "_commit: v0.1.0\n")
    git(tmp_path, "clone", "--quiet", str(origin), str(here))

    done = paved_in(here, "status", str(tmp_path / "fleet"), "--no-check", "--json")

    row = json.loads(done.stdout)["repos"][0]
    assert "is not a template source or release" in row["error"], row  # refused as read
    assert not marker.exists()
    # And were it read, git takes it for a URL, not an option.
    with pytest.raises(PavedError):
        list(release_commits(f"--upload-pack=touch {marker};git-upload-pack"))
    assert not marker.exists()


def test_only_the_update_branch_itself_counts_as_pushed(tmp_path: Path) -> None:
    # `git ls-remote --heads URL branch` matches the end of a ref's name: a team's
    # wip/paved/update-v0.2.0 counted as the fleet's branch.
    work = repo_with_answers(tmp_path / "work", "_commit: v0.1.0\n")
    bare = tmp_path / "team.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(work), str(bare))
    git(work, "push", "--quiet", str(bare), "HEAD:refs/heads/wip/paved/update-v0.2.0")
    ref = RepoRef(name="team", url=bare.as_uri())
    assert branch_tip(ref, "paved/update-v0.2.0") == ""
    git(work, "push", "--quiet", str(bare), "HEAD:refs/heads/paved/update-v0.2.0")
    assert branch_tip(ref, "paved/update-v0.2.0") == git(work, "rev-parse", "HEAD").strip()


def test_paved_check_follows_no_link_out_of_the_repo_or_round_a_loop(tmp_path: Path) -> None:
    # PV008 walked src/ following links: two links back to src/ gave ~2^40 paths and a link
    # to / walked the host; paved check (and status and the fleet with it) never ended.
    repo = tmp_path / "team"
    (repo / "src" / "team").mkdir(parents=True)
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "team"\n[tool.paved]\ntracking-uri = "http://mlflow.internal"\n'
    )
    (repo / "src" / "team" / "train.py").write_text(
        'import mlflow\nmlflow.set_tracking_uri("http://elsewhere")\n'
    )
    outside = tmp_path / "outside.py"
    outside.write_text('import mlflow\nmlflow.set_tracking_uri("http://outside")\n')
    (repo / "src" / "a").symlink_to(".")
    (repo / "src" / "b").symlink_to(".")
    (repo / "src" / "x").symlink_to("/")
    (repo / "src" / "outside.py").symlink_to(outside)
    os.mkfifo(repo / "src" / "team" / "fifo.py")  # opening it would block for ever

    done = subprocess.run(
        [sys.executable, "-m", "paved", "check", str(repo), "--select=PV008", "--format=json"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    found = json.loads(done.stdout)["checks"]["PV008"]
    assert found["result"] is False, found
    assert "src/team/train.py:2" in found["err_msg"]
    assert "outside" not in found["err_msg"] and "src/a/" not in found["err_msg"]

    # Without it, what the walk left unread still fails the check: a link could hide it.
    (repo / "src" / "team" / "train.py").write_text("import mlflow\n")
    again = subprocess.run(done.args, capture_output=True, text=True, timeout=60)
    found = json.loads(again.stdout)["checks"]["PV008"]
    assert found["result"] is False and "src/outside.py (a link)" in found["err_msg"], found


def _limited_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # a bomb fails fast, not swaps


def test_unsafe_answers_fail_their_own_row_only(tmp_path: Path) -> None:
    # An 893-byte alias bomb in one repo's answers took `paved status` down with MemoryError.
    template = repo_with_answers(tmp_path / "template", "_commit: v0.1.0\n")
    git(template, "tag", "v0.1.0")
    fleet = tmp_path / "fleet"
    repo_with_answers(fleet / "bomb", f"{ALIAS_BOMB}_src_path: *i\n_commit: v0.1.0\n")
    repo_with_answers(fleet / "listy", "_src_path: [a, b]\n_commit: v0.1.0\n")
    # libyaml recursed once per level: 100 kB of brackets crashed the whole run (SIGSEGV).
    repo_with_answers(fleet / "deep", f"_src_path: {'[' * 50_000}{']' * 50_000}\n")
    repo_with_answers(fleet / "nul", '_src_path: "x\\0y"\n_commit: v0.1.0\n')
    repo_with_answers(
        fleet / "huge", f"_src_path: {template}\n_commit: v0.1.0\n#{'x' * (2 << 20)}\n"
    )
    repo_with_answers(fleet / "fine", f"_src_path: {template}\n_commit: v0.1.0\n")
    bare = tmp_path / "fine.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(fleet / "fine"), str(bare))
    manifest = tmp_path / "fleet.yml"
    manifest.write_text(
        f"- {{url: {bare.as_uri()}, name: '..'}}\n- {{url: {bare.as_uri()}, name: ok}}\n"
    )

    by_name = {}
    for target in (fleet, manifest):
        done = subprocess.run(
            [sys.executable, "-m", "paved", "status", str(target), "--no-check", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=_limited_memory,
        )
        by_name |= {row["name"]: row for row in json.loads(done.stdout)["repos"]}

    assert "anchors and aliases are refused" in by_name["bomb"]["error"]
    assert "_src_path is a list, not a plain value" in by_name["listy"]["error"]
    assert "nested over 64 levels deep" in by_name["deep"]["error"]
    assert "is not a template source or release" in by_name["nul"]["error"]
    assert "over 1048576 bytes" in by_name["huge"]["error"]
    assert "'..' is not a repo name" in by_name[".."]["error"]
    for name in ("fine", "ok"):
        assert by_name[name]["error"] == "" and by_name[name]["latest"] == "v0.1.0", by_name[name]


CHECK_JSON = ("--select=PV007,PV009", "--format=json")


def test_a_yaml_file_that_is_not_a_mapping_fails_its_check_not_the_run(tmp_path: Path) -> None:
    repo = tmp_path / "team"
    repo.mkdir()
    (repo / "pyproject.toml").write_text('[project]\nname = "team"\n')
    (repo / "dvc.yaml").write_text("- train\n- evaluate\n")
    (repo / "bentofile.yaml").write_text("just a string\n")
    done = subprocess.run(
        [sys.executable, "-m", "paved", "check", str(repo), *CHECK_JSON],
        capture_output=True,
        text=True,
        timeout=60,
    )
    checks = json.loads(done.stdout)["checks"]
    assert checks["PV007"]["result"] is False and checks["PV009"]["result"] is False, checks


def test_a_repos_pyproject_and_python_pin_are_read_once_and_bounded(tmp_path: Path) -> None:
    """TeamRepo's pyproject and .python-version: what adopt, the image and the checks read."""
    from paved.repo import YAML_BYTES, TeamRepo

    repo = tmp_path / "repo"
    repo.mkdir()
    assert TeamRepo(repo).pyproject == {} and TeamRepo(repo).python_pin is None
    (repo / "pyproject.toml").write_text('[project]\nname = "churn"\n')
    (repo / ".python-version").write_text(" 3.11.9\n")
    team = TeamRepo(repo)
    assert team.pyproject["project"]["name"] == "churn" and team.python_pin == "3.11.9"
    (repo / "pyproject.toml").write_text("[project\n")
    assert team.pyproject["project"]["name"] == "churn"  # read once, kept
    with pytest.raises(PavedError, match=r"pyproject\.toml is not valid TOML"):
        _ = TeamRepo(repo).pyproject
    (repo / "pyproject.toml").write_text("# " + "x" * YAML_BYTES + "\n")
    with pytest.raises(PavedError, match=f"over {YAML_BYTES} bytes"):
        _ = TeamRepo(repo).pyproject
    (repo / ".python-version").unlink()
    os.mkfifo(repo / ".python-version")  # a FIFO would block a plain read forever
    assert TeamRepo(repo).python_pin is None
