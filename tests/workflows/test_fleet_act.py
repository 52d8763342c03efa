"""CI tier: the fleet-rollout reusable workflow rolls a release out under act.

A caller repo holds a manifest of three team repos (local bare remotes whose pre-receive
hook refuses pushes to main) and calls fleet-rollout.yml, served from a throwaway platform
with releases v0.1.0 and v0.2.0. Two repos are at v0.1.0, one already at v0.2.0: the plan
job copies the two, the update matrix updates the copies without the token, and the deliver
job pushes each on paved/update-v0.2.0 and lists them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ci.golden_path import generate, run, tool_env
from ci.snapshot import GIT_IDENTITY
from ci.throwaway import two_releases
from tests.lib.act_runner import Team
from tests.lib.helpers import PROTECT_MAIN, refs

pytestmark = [pytest.mark.workflows, pytest.mark.usefixtures("foreign_ci_context")]


def test_the_matrix_rolls_a_release_out_to_bare_remotes(tmp_path: Path) -> None:
    platform = tmp_path / "paved"
    _, b_sha = two_releases(platform)
    env = {**tool_env(platform), **GIT_IDENTITY}
    remotes = tmp_path / "remotes"
    manifest = []
    for name, release in (("churn", "v0.1.0"), ("upsell", "v0.1.0"), ("risk", "v0.2.0")):
        repo = tmp_path / name
        generate(repo, env, {"project_name": name.title(), "team": "fleet"}, vcs_ref=release)
        bare = remotes / f"{name}.git"
        run(["git", "clone", "--quiet", "--bare", str(repo), str(bare)], tmp_path, env)
        (bare / "hooks" / "pre-receive").write_text(PROTECT_MAIN)
        (bare / "hooks" / "pre-receive").chmod(0o755)
        manifest.append({"url": bare.as_uri(), "name": name})
    before = {p.name: run(["git", "rev-parse", "main"], p, env).stdout for p in remotes.iterdir()}

    caller = tmp_path / "platform-ops"
    (caller / ".github" / "workflows").mkdir(parents=True)
    (caller / "fleet.yml").write_text(yaml.safe_dump(manifest))
    (caller / ".github" / "workflows" / "rollout.yml").write_text(
        "name: rollout\non: push\npermissions: {}\njobs:\n  rollout:\n"
        "    permissions:\n      contents: read\n"
        f"    uses: acme/paved/.github/workflows/fleet-rollout.yml@{b_sha} # v0.2.0\n"
        "    with:\n      fleet: fleet.yml\n      release: v0.2.0\n      max-parallel: 2\n"
    )
    run(["git", "init", "--quiet", "--initial-branch=main"], caller, env)
    run(["git", "add", "--all"], caller, env)
    run(["git", "commit", "--quiet", "-m", "Fleet"], caller, env)
    work = tmp_path / "act"
    work.mkdir()
    code, log = Team(caller, env, platform, b_sha, work).act("rollout.yml")
    assert code == 0, log[-6000:]
    assert "fleet churn: updated" in log and "fleet upsell: updated" in log, log[-4000:]
    assert "fleet risk" not in log  # already on the release: not in the matrix
    for name in ("churn", "upsell"):
        bare = remotes / f"{name}.git"
        message = run(["git", "log", "-1", "--format=%B", "paved/update-v0.2.0"], bare, env)
        assert "Update to the Paved platform v0.2.0" in message.stdout
    for path in remotes.iterdir():  # no default branch moved
        assert run(["git", "rev-parse", "main"], path, env).stdout == before[path.name]
    assert (
        subprocess.run(
            ["git", "ls-remote", "--heads", (remotes / "risk.git").as_uri(), "paved/*"],
            capture_output=True,
            text=True,
        ).stdout
        == ""
    )

    # The dashboard: an artifact, linked from the summary, one row per repo of the manifest.
    page = (work / "artifacts" / "fleet-dashboard" / "index.html").read_text()
    assert page.count("<tr data-team=") == 3
    for name in ("churn", "upsell"):  # updated: each has its branch open, not yet merged
        assert re.search(rf'<td data-sort="{name}"[^>]*>{name}</td>.*?branch paved/update', page)
    assert "Success - Main Link the dashboard" in log, log[-4000:]

    # A re-run finds the branches at the commits the first run recorded (kept in the cache):
    # pending, nothing pushed.
    branches = {name: refs(remotes / f"{name}.git") for name in ("churn", "upsell")}
    code, log = Team(caller, env, platform, b_sha, work).act("rollout.yml")
    assert code == 0, log[-6000:]
    assert "fleet churn: pending" in log and "fleet upsell: pending" in log, log[-4000:]
    assert {name: refs(remotes / f"{name}.git") for name in branches} == branches

    # A shard that dies before its report (here: a record it cannot read) fails the summary.
    caches = work / "artifacts.caches"
    broken = caches / "paved-fleet-v0.2.0-9999999999-1"
    broken.mkdir()
    (broken / "v0.2.0.json").write_text("{ not json")
    saved = sorted(caches.iterdir())
    code, log = Team(caller, env, platform, b_sha, work).act("rollout.yml")
    assert code != 0
    assert re.search(r"fleet shard \d \((churn|upsell)\): no report", log), log[-4000:]
    assert "the record restored from the cache does not read" in log
    assert sorted(caches.iterdir()) == saved  # nothing saved over the record
