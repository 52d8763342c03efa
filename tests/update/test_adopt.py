"""`paved adopt` on repos made by real tools: ccds, cruft over a cookiecutter template, none.

Each repo is made in the test by the tool itself (`ccds` on cookiecutter-data-science's
template, vendored under tests/fixtures because its PyPI package fetches it from GitHub;
`cruft create` on a template written here; plain files), adopted at v0.1.0 of a throwaway
platform, checked, and (for ccds) updated to v0.2.0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ci.golden_path import run, tool_env
from ci.snapshot import GIT_IDENTITY, LOCK_ENV
from ci.throwaway import NEW_SECTION, two_releases
from tests.lib.helpers import commit_all, paved

pytestmark = pytest.mark.update

CCDS_TEMPLATE = Path(__file__).parents[1] / "fixtures" / "ccds-2.3.0"
BIN = Path(sys.executable).parent
#: Adopt at the first throwaway release, defaults for what is neither mapped nor given.
ADOPT = ("--to", "v0.1.0", "--defaults", "-d")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    repo = tmp_path_factory.mktemp("releases") / "paved"
    two_releases(repo)
    return {**tool_env(repo), **GIT_IDENTITY, **LOCK_ENV}


def git_repo(repo: Path, env: dict[str, str]) -> Path:
    run(["git", "init", "--quiet", "--initial-branch=main"], repo, env)
    commit_all(repo, env, "Before Paved")
    return repo


def files_of(repo: Path) -> dict[str, bytes]:
    return {
        p.relative_to(repo).as_posix(): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }


def assert_nothing_lost(before: dict[str, bytes], repo: Path, conflicts: set[str]) -> None:
    """Each file the repo had is there unchanged, or listed with every one of its lines kept."""
    for path, content in before.items():
        now = (repo / path).read_bytes()
        if path in conflicts:
            assert b"<<<<<<< " in now, path
            kept = now.decode().splitlines()
            assert all(line in kept for line in content.decode().splitlines()), path
        else:
            assert now == content, f"{path} changed without a conflict"


def union(path: Path) -> None:
    """Resolve a conflicted file by keeping both sides (the repo's first)."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(
        "".join(line for line in lines if not line.startswith(("<<<<<<<", "=======", ">>>>>>>")))
    )


def test_a_ccds_project_is_merged_file_by_file_then_checked_and_updated(
    env: dict[str, str], tmp_path: Path
) -> None:
    subprocess.run(
        [
            str(BIN / "ccds"),
            str(CCDS_TEMPLATE),
            "--no-input",
            "--output-dir",
            str(tmp_path),
            "project_name=Churn Model",
            "python_version_number=3.11",
            "environment_manager=none",
            "dependency_file=requirements.txt",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    repo = git_repo(tmp_path / "churn_model", env)
    before = files_of(repo)
    main = run(["git", "rev-parse", "main"], repo, env).stdout

    done = paved(
        env, "adopt", str(repo), "--to", "v0.1.0", "-d", "team=growth", "--defaults", "--json"
    )
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    conflicts = {c["path"] for c in report["conflicts"]}
    assert {"README.md", "pyproject.toml", ".gitignore"} <= conflicts
    assert report["mapped"]["distribution_name"] == "pyproject.toml [project] name"
    assert report["answers"]["distribution_name"] == "churn-model"
    assert report["answers"]["package_name"] == "churn_model"
    assert report["answers"]["python_version"] == "3.11"
    assert "team" in report["unmapped"]
    assert any("requirements.txt" in note for note in report["notes"])
    assert any("git mv churn_model src/" in note for note in report["notes"])
    # On its own branch; main is where it was.
    assert run(["git", "branch", "--show-current"], repo, env).stdout.strip() == "paved/adopt"
    assert run(["git", "rev-parse", "main"], repo, env).stdout == main
    assert_nothing_lost(before, repo, conflicts)
    assert set(report["added"]) >= {".copier-answers.yml", "dvc.yaml", "src/churn_model/service.py"}

    # The team resolves (keeping both sides; the template's pyproject), locks and commits.
    run(["git", "checkout", "--theirs", "pyproject.toml"], repo, env)
    for path in conflicts - {"pyproject.toml"}:
        union(repo / path)
    run(["uv", "lock", "--quiet"], repo, env)
    commit_all(repo, env, "Adopt the Paved template")

    checked = paved(env, "check", str(repo), "--select", "PV", "--format", "json")
    assert checked.returncode == 0, checked.stdout
    assert json.loads(checked.stdout)["score"] == 100.0

    updated = paved(env, "update", str(repo), "--json")
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert json.loads(updated.stdout)["to_release"] == "v0.2.0"
    assert NEW_SECTION.strip() in (repo / "README.md").read_text()
    assert "Makefile" in files_of(repo)  # ccds's own files stay
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v0.2.0"


COOKIECUTTER = {
    "project_name": "Fraud Score",
    "repo_name": "fraud-score",
    "module_name": "fraud_score",
    "description": "Scores card payments for fraud.",
    # 3.11: the lock resolves for the interpreter this machine has (3.12 would be downloaded).
    "python_version": "3.11",
}


def test_a_cruft_repo_maps_its_context_and_merges_cleanly(
    env: dict[str, str], tmp_path: Path
) -> None:
    template = tmp_path / "team-template"
    body = template / "{{cookiecutter.repo_name}}"
    (body / "src" / "{{cookiecutter.module_name}}").mkdir(parents=True)
    (template / "cookiecutter.json").write_text(json.dumps(COOKIECUTTER))
    (body / "HISTORY.md").write_text("# {{cookiecutter.project_name}} history\n")
    (body / "src" / "{{cookiecutter.module_name}}" / "score.py").write_text("THRESHOLD = 0.7\n")
    git_repo(template, env)
    subprocess.run(
        [str(BIN / "cruft"), "create", str(template), "--no-input", "--output-dir", str(tmp_path)],
        check=True,
        capture_output=True,
        env=env,
    )
    repo = git_repo(tmp_path / "fraud-score", env)
    before = files_of(repo)
    state = before, run(["git", "branch", "--list"], repo, env).stdout

    # A failure after the merge (here: no uv to lock with) puts the repo back as it was.
    no_uv = {**env, "PATH": "/usr/bin:/bin"}
    failed = paved(no_uv, "adopt", str(repo), *ADOPT, "team=risk")
    assert failed.returncode == 1, failed.stderr
    assert "uv is not on PATH" in failed.stderr
    assert (files_of(repo), run(["git", "branch", "--list"], repo, env).stdout) == state
    assert run(["git", "status", "--porcelain"], repo, env).stdout == ""

    done = paved(
        env, "adopt", str(repo), "--to", "v0.1.0", "-d", "team=risk", "--defaults", "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "adopted" and report["conflicts"] == []
    for question in ("project_name", "distribution_name", "package_name", "description"):
        assert report["mapped"][question].startswith(".cruft.json cookiecutter."), question
        assert report["answers"][question] == COOKIECUTTER.get(
            {"distribution_name": "repo_name", "package_name": "module_name"}.get(
                question, question
            )
        )
    assert report["answers"]["python_version"] == "3.11"
    assert report["mapped"]["python_version"] == ".cruft.json cookiecutter.python_version"
    assert any(".cruft.json is kept" in note for note in report["notes"])
    assert_nothing_lost(before, repo, set())
    # Committed on the branch, with a lock: nothing left to do before `paved check`.
    assert run(["git", "status", "--porcelain"], repo, env).stdout == ""
    assert (repo / "uv.lock").is_file()
    checked = paved(env, "check", str(repo), "--select", "PV")
    assert checked.returncode == 0, checked.stdout


def test_a_plain_repo_and_the_refusals(env: dict[str, str], tmp_path: Path) -> None:
    repo = tmp_path / "scorer"
    (repo / "src" / "scorer").mkdir(parents=True)
    (repo / "src" / "scorer" / "__init__.py").write_text('"""Scores."""\n')
    (repo / "requirements.txt").write_text("scikit-learn>=1.5\n")
    (repo / "README.md").write_text("# Lead Scorer\n\nScores leads.\n")
    (repo / ".python-version").write_text("3.12\n")
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / "config").write_text(
        "[core]\n    remote = storage\n['remote \"storage\"']\n    url = s3://acme-leads/dvc\n"
    )
    git_repo(repo, env)
    state = files_of(repo), run(["git", "branch", "--list"], repo, env).stdout

    refused = paved(env, "adopt", str(repo), "-d", "team=Bad Team", "--defaults")
    assert refused.returncode == 1 and "team" in refused.stderr
    (repo / "notes.txt").write_text("draft\n")
    dirty = paved(env, "adopt", str(repo), "-d", "team=sales", "--defaults")
    assert dirty.returncode == 1 and "notes.txt" in dirty.stderr
    (repo / "notes.txt").unlink()
    assert (files_of(repo), run(["git", "branch", "--list"], repo, env).stdout) == state

    done = paved(
        env,
        "adopt",
        str(repo),
        "--to",
        "v0.1.0",
        "-d",
        "team=sales",
        "--defaults",
        "--no-lock",
        "--json",
    )
    report = json.loads(done.stdout)
    assert report["answers"]["package_name"] == "scorer"
    assert report["mapped"]["package_name"] == "src/scorer/__init__.py"
    assert report["answers"]["project_name"] == "Lead Scorer"
    assert report["answers"]["python_version"] == "3.12"
    assert "distribution_name" in report["unmapped"]
    assert report["answers"]["dvc_remote"] == "s3"
    assert report["answers"]["dvc_remote_url"] == "s3://acme-leads/dvc"
    assert report["mapped"]["dvc_remote"] == ".dvc/config"
    conflicts = {"README.md", "src/scorer/__init__.py", ".dvc/config"}
    assert {c["path"] for c in report["conflicts"]} == conflicts
    assert_nothing_lost(state[0], repo, conflicts)
    again = paved(env, "adopt", str(repo), "-d", "team=sales", "--defaults")
    assert again.returncode == 1


def test_a_failed_adoption_keeps_ignored_files_and_a_detached_head(
    env: dict[str, str], tmp_path: Path
) -> None:
    # The merge replaced an ignored .python-version with the template's, the clean-up then
    # deleted it, and a detached HEAD was left on paved/adopt (`git switch <sha>` needs
    # --detach).
    repo = tmp_path / "scorer"
    repo.mkdir()
    (repo / "notes.md").write_text("first commit\n")
    git_repo(repo, env)
    (repo / ".git" / "info" / "exclude").write_text(".python-version\n")
    (repo / ".python-version").write_text("3.12.7\n")  # this laptop's pyenv
    (repo / "notes.md").write_text("second commit\n")
    commit_all(repo, env, "Notes")
    run(["git", "switch", "--quiet", "--detach", "HEAD~1"], repo, env)
    head = run(["git", "rev-parse", "HEAD"], repo, env).stdout

    def state() -> tuple[dict[str, bytes], str, str, int]:
        detached = subprocess.run(["git", "symbolic-ref", "--quiet", "HEAD"], cwd=repo)
        branches = run(["git", "branch", "--list"], repo, env).stdout
        return (
            files_of(repo),
            branches,
            run(["git", "rev-parse", "HEAD"], repo, env).stdout,
            (detached.returncode),
        )

    before = state()
    adopt = ("adopt", str(repo), *ADOPT, "team=sales", "-d", "project_name=Scorer")
    refused = paved(env, *adopt, "--no-lock")
    assert refused.returncode == 1
    assert "files this repo ignores (.python-version)" in refused.stderr, refused.stderr
    assert state() == before

    # An ignored file where the template has a folder (docs/) would be replaced by it.
    (repo / ".python-version").unlink()
    (repo / ".git" / "info" / "exclude").write_text("docs\n")
    (repo / "docs").write_text("my notes, not a folder\n")
    before = state()
    refused = paved(env, *adopt, "--no-lock")
    assert "files this repo ignores (docs)" in refused.stderr, refused.stderr
    assert state() == before
    (repo / "docs").unlink()

    # A failure after the merge (no package index for the re-lock) puts back the very commit.
    before = state()
    offline = {**env, "UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "empty-cache")}
    failed = paved(offline, *adopt)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert state() == before and before[2:] == (head, 1)
