"""Update tier: team repos generated at release A, updated to release B by `paved update`.

Both releases are throwaway platform repos built here: A is this checkout's working tree
(tagged v0.1.0), B is A plus template changes, cut with ci/release.py. The canonical URL
is mapped to that repo by git's insteadOf, so team repos record the real source.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ci.git_trace import git_trace
from ci.golden_path import DEMO_ANSWERS, generate, run, tool_env
from ci.release import release
from ci.snapshot import GIT_IDENTITY, snapshot
from ci.throwaway import CHANGELOG_LINE, NEW_SECTION, TEMPLATE, two_releases
from tests.lib.helpers import commit_all

pytestmark = pytest.mark.update

PACKAGE = "iris_demo"


class Platform:
    """A platform repo with releases v0.1.0 (A) and v0.2.0 (B)."""

    def __init__(self, repo: Path, a_sha: str, b_sha: str) -> None:
        self.repo, self.a_sha, self.b_sha = repo, a_sha, b_sha
        self.env = {**tool_env(repo), **GIT_IDENTITY}


@pytest.fixture(scope="module")
def platform_ab(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    repo = tmp_path_factory.mktemp("releases") / "paved"
    a_sha, b_sha = two_releases(repo)
    return Platform(repo, a_sha, b_sha)


def team_repo(platform: Platform, dest: Path, **answers: str) -> Path:
    """A team repo generated at A."""
    data = {**DEMO_ANSWERS, "dvc_remote_url": str(dest.parent / "remote"), **answers}
    return generate(dest, platform.env, data, vcs_ref="v0.1.0")


def paved_update(
    repo: Path, platform: Platform, *args: str, trace: Path | None = None
) -> subprocess.CompletedProcess[str]:
    traced = {"GIT_TRACE2_EVENT": str(trace)} if trace else {}
    return subprocess.run(
        [sys.executable, "-m", "paved", "update", str(repo), *args],
        env={**platform.env, **traced},
        capture_output=True,
        text=True,
        timeout=600,
    )


def snapshot_of(repo: Path) -> dict[str, str]:
    """Every file's hash (outside .git and .venv), HEAD, the index and the branches."""
    state = {
        path.relative_to(repo).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(repo.rglob("*"))
        if path.is_file() and not {".git", ".venv"} & set(path.relative_to(repo).parts)
    }
    for name, args in {
        "HEAD": ["rev-parse", "HEAD"],
        "index": ["ls-files", "--stage"],
        "branches": ["branch", "--list"],
    }.items():
        state[f"<{name}>"] = run(["git", *args], repo, {}).stdout
    return state


def test_update_merges_the_release_keeps_the_teams_work_and_relocks(
    platform_ab: Platform, tmp_path: Path
) -> None:
    repo = team_repo(platform_ab, tmp_path / "iris-demo")
    params = repo / "params.yaml"
    # Four lines from the release's change to max_iter: git merges both.
    params.write_text(params.read_text().replace("  test_size: 0.25", "  test_size: 0.3"))
    (repo / "src" / PACKAGE / "features.py").write_text('"""The team\'s own module."""\n')
    (repo / ".pre-commit-config.yaml").unlink()
    (repo / ".dvcignore").write_text((repo / ".dvcignore").read_text() + "scratch/\n")
    commit_all(repo, platform_ab.env, "Team: test size, features, no pre-commit, ignore scratch")
    lock_before = (repo / "uv.lock").read_text()

    trace = tmp_path / "trace.json"
    done = paved_update(repo, platform_ab, "--json", trace=trace)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "updated" and report["exit_code"] == 0
    assert (report["from_release"], report["to_release"]) == ("v0.1.0", "v0.2.0")
    assert report["conflicts"] == []
    assert report["removed_edited"] == [".dvcignore"]
    # The notes, the old release's .dvcignore and copier's renders all came from one clone.
    assert git_trace(trace, platform_ab.repo)[1] == 1
    assert CHANGELOG_LINE in report["changelog"]
    assert sorted(report["locked"]) == ["paved", "paved-ml"]
    assert report["locked_ahead"] is True  # locked during the merge, then checked below

    text = params.read_text()
    assert "  test_size: 0.3" in text and "  max_iter: 800" in text  # both sides kept
    assert NEW_SECTION in (repo / "README.md").read_text()
    assert (repo / "src" / PACKAGE / "features.py").is_file()
    assert not (repo / ".pre-commit-config.yaml").exists()  # the team deleted it: stays so
    assert not (repo / ".dvcignore").exists()
    old = run(["git", "show", "HEAD:.dvcignore"], repo, {}).stdout
    assert "scratch/" in old  # recoverable from HEAD, as the report says

    run(["uv", "lock", "--check"], repo, platform_ab.env)
    lock_after = (repo / "uv.lock").read_text()
    assert platform_ab.b_sha in lock_after and platform_ab.a_sha not in lock_after
    moved = _locked(lock_before).items() ^ _locked(lock_after).items()
    assert {name for name, _ in moved} == {"paved", "paved-ml"}, "only the platform moved"
    leftovers = subprocess.run(
        ["git", "grep", "-l", "-e", platform_ab.a_sha, "-e", "v0.1.0"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert leftovers.returncode == 1 and leftovers.stdout == "", leftovers.stdout
    # Backstage's catalog entry names the release the repo is on now.
    assert 'paved.dev/release: "v0.2.0"' in (repo / "catalog-info.yaml").read_text()

    again = paved_update(repo, platform_ab)
    assert again.returncode == 1 and "uncommitted changes" in again.stderr  # review first
    commit_all(repo, platform_ab.env, "Update to v0.2.0")
    current = paved_update(repo, platform_ab)
    assert current.returncode == 0 and "is at v0.2.0" in current.stderr


def _locked(lock: str) -> dict[str, str]:
    import tomllib

    return {
        package["name"]: f"{package.get('version')} {package.get('source')}"
        for package in tomllib.loads(lock)["package"]
    }


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("  max_iter: 500", "  max_iter: 2000"),  # the very line the release changes
        ("  C: 1.0 ", "  C: 2.5 "),  # the line next to it
    ],
    ids=["same-line", "next-line"],
)
def test_an_edit_at_the_release_s_change_is_a_reported_conflict(
    platform_ab: Platform, tmp_path: Path, old: str, new: str
) -> None:
    repo = team_repo(platform_ab, tmp_path / "iris-demo")
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace(old, new))
    commit_all(repo, platform_ab.env, "Team: tune training")
    done = paved_update(repo, platform_ab, "--json")
    assert done.returncode == 3, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "conflicts"
    # copier leaves the merge unresolved in the index (UU) and the markers in the file.
    assert [(c["path"], c["markers"]) for c in report["conflicts"]] == [("params.yaml", 1)]
    assert report["conflicts"][0]["kind"] in {"unmerged", "markers"}
    text = params.read_text()
    assert new in text and "max_iter: 800" in text and "<<<<<<<" in text
    assert report["locked"] == ["paved", "paved-ml"]  # the lock is current all the same


def test_refusals_leave_the_repo_untouched(platform_ab: Platform, tmp_path: Path) -> None:
    repo = team_repo(platform_ab, tmp_path / "iris-demo")
    (repo / "notes.txt").write_text("work in progress\n")
    before = snapshot_of(repo)
    done = paved_update(repo, platform_ab)
    assert done.returncode == 1
    assert "uncommitted changes (notes.txt)" in done.stderr
    assert snapshot_of(repo) == before

    (repo / "notes.txt").unlink()
    done = paved_update(repo, platform_ab, "--to", "v9.9.9")
    assert done.returncode == 1 and "v9.9.9 is not a release" in done.stderr

    assert paved_update(repo, platform_ab).returncode == 0
    commit_all(repo, platform_ab.env, "Update to v0.2.0")
    before = snapshot_of(repo)
    done = paved_update(repo, platform_ab, "--to", "v0.1.0")
    assert done.returncode == 1 and "never downgrades" in done.stderr
    assert snapshot_of(repo) == before


def test_a_failed_update_puts_the_repo_back_exactly(platform_ab: Platform, tmp_path: Path) -> None:
    repo = team_repo(platform_ab, tmp_path / "iris-demo")
    # A dependency no index has: copier's merge succeeds, the re-lock cannot.
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "dependencies = [", 'dependencies = [\n    "paved-no-such-package==1.0",', 1
        )
    )
    commit_all(repo, platform_ab.env, "Team: a dependency nobody publishes")
    before = snapshot_of(repo)
    done = paved_update(repo, platform_ab, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "failed" and "uv lock" in report["reason"]
    assert snapshot_of(repo) == before


def test_plain_copier_update_says_what_to_run_and_that_leaves_the_lock_current(
    platform_ab: Platform, tmp_path: Path
) -> None:
    repo = team_repo(platform_ab, tmp_path / "iris-demo")
    update = [sys.executable, "-m", "copier", "update", "--defaults", "--skip-answered"]
    done = run(update, repo, platform_ab.env)
    output = done.stdout + done.stderr
    block = output.split("Next steps:", 1)[1].split("\n\n", 1)[0]
    steps = [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert steps[0].startswith("uv lock --upgrade-package paved")
    for step in steps:
        run(["bash", "-c", step], repo, platform_ab.env)
    run(["uv", "lock", "--check"], repo, platform_ab.env)
    assert run(["git", "status", "--porcelain"], repo, {}).stdout == ""
    assert re.search(
        r"Update to the platform's v0\.2\.0", run(["git", "log", "-1"], repo, {}).stdout
    )


#: The questions the release before deploy did not ask (copier.yml blocks).
DEPLOY_QUESTIONS = ("deploy_target", "service_cpu", "service_memory")


def test_an_update_brings_deploy_into_a_repo_made_before_it(tmp_path: Path) -> None:
    """v0.1.0 asks no deploy question (so renders no deploy/); v0.2.0 is this checkout."""
    platform = tmp_path / "paved"
    snapshot(platform, tag=None)
    env = {**tool_env(platform), **GIT_IDENTITY}
    copier_yml = platform / "copier.yml"
    full = copier_yml.read_text()
    before_deploy = full
    for question in DEPLOY_QUESTIONS:
        before_deploy = re.sub(rf"(?ms)^{question}:\n.*?\n\n", "", before_deploy)
    assert "deploy_target" not in before_deploy
    copier_yml.write_text(before_deploy)
    run(["git", "commit", "--quiet", "-am", "Template: before deploy"], platform, env)
    run(["git", "tag", "--annotate", "v0.1.0", "-m", "Release v0.1.0"], platform, env)
    copier_yml.write_text(full)
    run(["git", "commit", "--quiet", "-am", "Template: deploy"], platform, env)
    release(platform, "0.2.0")

    data = {**DEMO_ANSWERS, "dvc_remote_url": str(tmp_path / "remote")}
    repo = generate(tmp_path / "iris-demo", env, data, vcs_ref="v0.1.0")
    assert not (repo / "deploy").exists()
    done = subprocess.run(
        [sys.executable, "-m", "paved", "update", str(repo), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "updated" and report["conflicts"] == []
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["deploy_target"] == "kubernetes" and answers["service_memory"] == "1Gi"
    added = run(["git", "status", "--porcelain", "-uall", "--", "deploy"], repo, {}).stdout
    assert "deploy/overlays/staging/kustomization.yaml" in added
    assert (repo / "deploy" / "base" / "deployment.yaml").is_file()
    # What came in is sound: PV012 passes and kubectl renders both overlays.
    from paved.checks import check_repo

    report_pv = check_repo(repo, select=frozenset({"PV012"}))
    assert [r.result for r in report_pv.results if r.name == "PV012"] == [True]
    for environment in ("staging", "production"):
        run(["kubectl", "kustomize", f"deploy/overlays/{environment}"], repo, env)


def test_an_update_brings_monitoring_and_retraining_into_a_repo_made_before_them(
    tmp_path: Path,
) -> None:
    """v0.1.0 is this platform as it was before the fair gate, alerts and retraining (the
    parent of the commit that added decision 0030); v0.2.0 is this checkout."""
    import tarfile

    from ci.snapshot import ROOT

    added = run(
        ["git", "log", "-1", "--format=%H", "--diff-filter=A", "--",
         "docs/decisions/0030-a-fair-champion-gate.md"],
        ROOT, {},
    ).stdout.strip()  # fmt: skip
    assert added, "the commit that added decision 0030 is in this clone's history"
    old = tmp_path / "before"
    old.mkdir()
    archive = subprocess.run(["git", "archive", f"{added}^"], cwd=ROOT, capture_output=True)
    assert archive.returncode == 0, archive.stderr
    archive_path = tmp_path / "before.tar"
    archive_path.write_bytes(archive.stdout)
    with tarfile.open(archive_path) as tar:
        tar.extractall(old, filter="data")
    platform = tmp_path / "paved"
    snapshot(platform, tag="v0.1.0", source=old)
    env = {**tool_env(platform), **GIT_IDENTITY}
    now = {**env, "GIT_DIR": str(platform / ".git"), "GIT_WORK_TREE": str(ROOT)}
    run(["git", "add", "--all"], ROOT, now)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "Monitoring that acts"], ROOT, now)
    run(["git", "checkout", "--quiet", "--force", "main"], platform, env)
    release(platform, "0.2.0")

    data = {**DEMO_ANSWERS, "dvc_remote_url": str(tmp_path / "remote")}
    repo = generate(tmp_path / "iris-demo", env, data, vcs_ref="v0.1.0")
    assert not (repo / ".github/workflows/retrain.yml").exists()
    done = subprocess.run(
        [sys.executable, "-m", "paved", "update", str(repo), "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "updated" and report["conflicts"] == [], report
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert answers["retrain_schedule"] == "0 5 * * 1" and answers["retrain_on_drift"] is False
    retrain = yaml.safe_load((repo / ".github/workflows/retrain.yml").read_text())
    assert "team-retrain.yml@" in retrain["jobs"]["retrain"]["uses"]
    drift = yaml.safe_load((repo / ".github/workflows/drift.yml").read_text())
    assert drift["jobs"]["drift"]["permissions"] == {"contents": "read"}
    alert = drift["jobs"]["alert"]
    assert alert["permissions"] == {"contents": "read", "issues": "write"}
    assert "team-alert.yml@" in alert["uses"] and "alert-webhook" in alert["secrets"]
    monitoring = yaml.safe_load((repo / "params.yaml").read_text())["monitoring"]
    assert monitoring["min_f1_macro"] == 0.85 and monitoring["feedback_window"] == "1D"
    assert "<!-- paved:champion -->" in (repo / "docs/model-card.md").read_text()
    evaluate = next(repo.rglob("pipeline/evaluate.py")).read_text()
    assert "same_test_set=SameTestSet(" in evaluate and "GATE.write_text" in evaluate
    service = next(repo.rglob("service.py")).read_text()
    assert "add_asgi_middleware(PredictionIdHeader)" in service
    # What came in passes the standard, the new workflow's permissions included.
    from paved.checks import check_repo

    checked = check_repo(repo, select=frozenset({"PV"}))
    failed = [(result.name, result.result) for result in checked.results if result.result is False]
    assert not failed and [r.name for r in checked.results if r.result is True], checked.results


@pytest.mark.workflows
@pytest.mark.usefixtures("foreign_ci_context")
def test_the_updated_commit_passes_its_ci_under_act(platform_ab: Platform, tmp_path: Path) -> None:
    """After `paved update` A -> B and a commit, CI in a clone of that commit is green."""
    from tests.lib.act_runner import Team

    repo = team_repo(platform_ab, tmp_path / "iris-demo")
    done = paved_update(repo, platform_ab)
    assert done.returncode == 0, done.stderr
    commit_all(repo, platform_ab.env, "Update to v0.2.0")
    pushed = tmp_path / "pushed"
    run(["git", "clone", "--quiet", str(repo), str(pushed)], tmp_path, platform_ab.env)
    team = Team(pushed, platform_ab.env, platform_ab.repo, platform_ab.b_sha, tmp_path)
    code, log = team.act("ci.yml")
    assert code == 0, log[-6000:]
    assert f"team-ci.yml@{platform_ab.b_sha}" in (pushed / ".github/workflows/ci.yml").read_text()
    assert re.search(r"ok tests \(", log) and re.search(r"ok pipeline \(", log), log[-3000:]


@pytest.fixture(scope="module")
def platform_abc(platform_ab: Platform) -> Platform:
    """B plus a third release, C (v0.3.0), that breaks things and ships migrations for them:
    a template module renamed (_common.py -> _paths.py), a question renamed (dvc_remote_url
    -> data_remote_url), and a validator tightened (org: no dashes)."""
    repo = platform_ab.repo
    env = platform_ab.env
    pipeline = repo / TEMPLATE / "src" / "{{package_name}}" / "pipeline"
    run(["git", "mv", str(pipeline / "_common.py"), str(pipeline / "_paths.py")], repo, env)
    for stage in ("ingest", "prepare", "train", "evaluate"):
        path = next(
            p for p in (pipeline / f"{stage}.py", pipeline / f"{stage}.py.jinja") if p.exists()
        )
        path.write_text(path.read_text().replace("from ._common import", "from ._paths import"))
    for path in [repo / "copier.yml", *(repo / "templates").rglob("*.jinja")]:
        path.write_text(path.read_text().replace("dvc_remote_url", "data_remote_url"))
    copier_yml = repo / "copier.yml"
    text = copier_yml.read_text().replace(
        '"^[A-Za-z0-9](-?[A-Za-z0-9]){0,38}$", "a GitHub organisation',
        '"^[A-Za-z0-9]{1,39}$", "a GitHub organisation without dashes',
    )
    # A renamed file: copier would drop the team's edits with it (the new release no longer
    # has _common.py). After the update, the migration merges them into _paths.py: base =
    # the old release's _common.py (from the template clone), theirs = the team's (HEAD).
    old, new = (
        f"src/{{{{ package_name }}}}/pipeline/{name}" for name in ("_common.py", "_paths.py")
    )
    raw = "templates/ml-project/src/{{ '{{' }}package_name{{ '}}' }}/pipeline/_common.py"
    text += f"""
_migrations:
  - version: v0.3.0
    when: "{{{{ _stage == 'after' }}}}"
    command: >-
      if git cat-file -e HEAD:{old} 2>/dev/null; then
      git show HEAD:{old} > .paved-theirs &&
      git -C {{{{ _copier_conf.src_path }}}} show {{{{ _version_from }}}}:{raw} > .paved-base &&
      git merge-file {new} .paved-base .paved-theirs;
      rm -f .paved-base .paved-theirs; fi
  - version: v0.3.0
    when: "{{{{ _stage == 'before' }}}}"
    command: sed -i 's/^dvc_remote_url:/data_remote_url:/' .copier-answers.yml
"""
    copier_yml.write_text(text)
    changelog = repo / "docs" / "changelog.md"
    changelog.write_text(
        changelog.read_text().replace(
            "## [Unreleased]\n",
            "## [Unreleased]\n\n### Changed\n- pipeline/_common.py is now _paths.py, and the "
            "dvc_remote_url question data_remote_url: this release runs migrations (trust).\n",
            1,
        )
    )
    run(["git", "add", "--all"], repo, env)
    run(["git", "commit", "--quiet", "-m", "Template: rename, move, tighten"], repo, env)
    release(repo, "0.3.0")
    c_sha = run(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()
    return Platform(repo, platform_ab.a_sha, c_sha)


def test_a_skipping_update_runs_the_migrations_and_flags_a_refused_answer(
    platform_abc: Platform, tmp_path: Path
) -> None:
    dest = tmp_path / "iris-demo"
    remote = str(tmp_path / "team-remote")
    team_repo(platform_abc, dest, dvc_remote_url=remote, org="acme-ml")
    common = dest / "src" / PACKAGE / "pipeline" / "_common.py"
    common.write_text(common.read_text() + '\nTEAM_NOTE = "kept across the rename"\n')
    commit_all(dest, platform_abc.env, "Team: a note in _common.py")

    done = paved_update(dest, platform_abc, "--json")
    assert done.stdout, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert (report["from_release"], report["to_release"]) == ("v0.1.0", "v0.3.0")
    assert report["migrations"] == ["v0.3.0"]
    assert "runs migrations (trust)" in report["changelog"]
    assert CHANGELOG_LINE in report["changelog"]  # B's entry too: nothing skipped
    # The tightened validator refused "acme-ml": copier put the default back. Flagged.
    assert report["replaced_answers"] == {"org": ["acme-ml", "acme"]}
    assert report["status"] == "conflicts" and done.returncode == 3

    paths = dest / "src" / PACKAGE / "pipeline" / "_paths.py"
    assert not common.exists()
    assert 'TEAM_NOTE = "kept across the rename"' in paths.read_text()
    assert "from ._paths import" in (dest / "src" / PACKAGE / "pipeline" / "train.py").read_text()
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text())
    assert answers["data_remote_url"] == remote and "dvc_remote_url" not in answers
    assert remote in (dest / ".dvc" / "config").read_text()
    assert report["conflicts"] == []


def test_migrations_from_a_source_that_is_not_the_platforms_are_refused(
    platform_abc: Platform, tmp_path: Path
) -> None:
    """The same releases served under another URL: no template code runs, nothing changes."""
    other = "https://git.example.com/someone/paved.git"
    env = {
        **platform_abc.env,
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_1": f"url.{platform_abc.repo.resolve().as_uri()}.insteadOf",
        "GIT_CONFIG_VALUE_1": other,
    }
    dest = generate(tmp_path / "iris-demo", env, DEMO_ANSWERS, vcs_ref="v0.1.0", src=other)
    before = snapshot_of(dest)
    done = subprocess.run(
        [sys.executable, "-m", "paved", "update", str(dest), "--to", "v0.3.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1
    assert "runs migrations (v0.3.0)" in done.stderr and "trusts no other source" in done.stderr
    assert snapshot_of(dest) == before


def test_the_relock_uses_uvs_cache_only_when_nothing_from_the_index_moves(
    tmp_path: Path,
) -> None:
    """The offline-first re-lock: kept offline only if every index package is as before.

    The index is made unreachable (a proxy on a closed port) after a lock warms a private
    uv cache: a re-lock that needs nothing new succeeds from the cache alone; a re-lock whose
    offline result adds a package (cached, but new to the lock) is redone with the index,
    which fails here, so it raises instead of keeping the offline lock.
    """
    import shutil

    from paved._errors import PavedError
    from paved.update import _lock_platform

    uv = shutil.which("uv")
    assert uv is not None
    project = tmp_path / "project"
    project.mkdir()
    pyproject = '[project]\nname = "demo"\nversion = "0"\nrequires-python = ">=3.11"\n'
    (project / "pyproject.toml").write_text(pyproject + 'dependencies = ["six"]\n')
    cache = {"UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    warm = tmp_path / "warm"  # puts `idna` in the cache too, never in the project's lock
    warm.mkdir()
    (warm / "pyproject.toml").write_text(pyproject + 'dependencies = ["six", "idna"]\n')
    for folder in (project, warm):
        run([uv, "lock", "--quiet"], folder, {**os.environ, **cache})
    locked = (project / "uv.lock").read_text()

    closed = "http://127.0.0.1:9"  # the discard port: nothing listens
    offline_only = {**cache, "HTTPS_PROXY": closed, "HTTP_PROXY": closed, "UV_HTTP_RETRIES": "0"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in offline_only.items():
            patch.setenv(key, value)
        _lock_platform(project, uv)  # nothing moved: from the cache, no index needed
        assert (project / "uv.lock").read_text() == locked

        (project / "pyproject.toml").write_text(pyproject + 'dependencies = ["six", "idna"]\n')
        with pytest.raises(PavedError, match="uv lock"):
            _lock_platform(project, uv)  # idna is new: the index must be asked, and is down
        assert (project / "uv.lock").read_text() == locked  # the offline lock was not kept
