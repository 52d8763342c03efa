"""`paved deploy`: pull requests that move an environment's image, and what each runs.

The team repo's origin is a bare repo that refuses pushes to main; GitHub is the loopback
stand-in. A "merge" moves the bare repo's main by hand, as GitHub's merge button would.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from ci.golden_path import DEMO_ANSWERS, generate, run, tool_env
from ci.snapshot import GIT_IDENTITY
from tests.lib.fake_github import serving
from tests.lib.helpers import paved, protected_origin, refs

pytestmark = pytest.mark.update

OVERLAY = "deploy/overlays/{}/kustomization.yaml"
FIRST, SECOND = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def digest_on(bare: Path, branch: str, environment: str) -> str:
    text = run(["git", "show", f"{branch}:{OVERLAY.format(environment)}"], bare, {}).stdout
    return str(yaml.safe_load(text)["images"][0]["digest"])


def merge(bare: Path, branch: str) -> None:
    """What GitHub's merge button does to a branch made from main's tip: main moves to it."""
    run(["git", "update-ref", "refs/heads/main", f"refs/heads/{branch}"], bare, {})


def test_propose_promote_and_roll_back_by_pull_request(
    platform: tuple[Path, str], tmp_path: Path
) -> None:
    clone, _ = platform
    env = {**tool_env(clone), **GIT_IDENTITY}
    repo = generate(tmp_path / "iris-demo", env, DEMO_ANSWERS, lock=False)
    bare = protected_origin(repo, tmp_path / "iris-demo.git", env)
    state = tmp_path / "github.json"
    remote = {"full_name": "acme/iris-demo", "default_branch": "main", "bare": str(bare)}
    state.write_text(json.dumps({"token": "t0k", "repos": [remote], "pulls": []}))
    with serving(state, tmp_path / "github.log") as api:
        github = {**env, "PAVED_GITHUB_API": api, "PAVED_GITHUB_TOKEN": "t0k"}

        def deploy(*args: str) -> subprocess.CompletedProcess[str]:
            return paved(github, "deploy", *args, "--github", "acme/iris-demo", cwd=repo)

        before = refs(repo), run(["git", "status", "--porcelain"], repo, {}).stdout
        main = run(["git", "rev-parse", "main"], bare, {}).stdout

        done = deploy("propose", "staging", "--digest", FIRST)
        assert done.returncode == 0, done.stderr
        assert "proposed staging: ghcr.io/acme/iris-demo@" + FIRST in done.stdout
        assert digest_on(bare, "paved/deploy-staging", "staging") == FIRST
        changed = run(["git", "diff", "--stat", "main", "paved/deploy-staging"], bare, {}).stdout
        assert "1 file changed, 1 insertion(+), 1 deletion(-)" in changed  # the digest line
        # A newer release: the same branch and the same pull request, moved.
        assert deploy("propose", "staging", "--digest", SECOND).returncode == 0
        pulls = json.loads(state.read_text())["pulls"]
        assert [(p["head"], p["base"]) for p in pulls] == [("paved/deploy-staging", "main")]
        assert SECOND[7:19] in pulls[0]["title"] and FIRST not in pulls[0]["body"]
        assert digest_on(bare, "paved/deploy-staging", "staging") == SECOND
        assert run(["git", "rev-parse", "main"], bare, {}).stdout == main  # main untouched
        assert (refs(repo), run(["git", "status", "--porcelain"], repo, {}).stdout) == before
        assert "paved-deploy-" not in run(["git", "worktree", "list"], repo, {}).stdout

        merge(bare, "paved/deploy-staging")
        run(["git", "pull", "--quiet", "--ff-only", "origin", "main"], repo, env)
        refused = deploy("propose", "production", "--from", "production")
        assert refused.returncode == 1 and "cannot promote from 'production'" in refused.stderr
        done = deploy("propose", "production", "--from", "staging")
        assert done.returncode == 0, done.stderr
        assert digest_on(bare, "paved/deploy-production", "production") == SECOND
        production = json.loads(state.read_text())["pulls"][1]
        assert "the image `staging` runs" in production["body"]
        merge(bare, "paved/deploy-production")
        run(["git", "pull", "--quiet", "--ff-only", "origin", "main"], repo, env)

        status = paved(github, "deploy", "status", "--no-labels", "--json", cwd=repo)
        assert status.returncode == 0, status.stderr
        found = {row["environment"]: row for row in json.loads(status.stdout)}
        assert found["staging"]["digest"] == found["production"]["digest"] == SECOND
        last = run(["git", "log", "-1", "--format=%H"], repo, {}).stdout.strip()
        assert found["production"]["commit"] == last[:12] and found["production"]["promoted"]

        # A rollback: staging back to the first digest, by the same kind of pull request.
        done = deploy("propose", "staging", "--digest", FIRST)
        assert done.returncode == 0, done.stderr
        assert digest_on(bare, "paved/deploy-staging", "staging") == FIRST
        merge(bare, "paved/deploy-staging")
        run(["git", "pull", "--quiet", "--ff-only", "origin", "main"], repo, env)
        assert (
            yaml.safe_load((repo / OVERLAY.format("staging")).read_text())["images"][0]["digest"]
            == FIRST
        )
        again = deploy("propose", "staging", "--digest", FIRST)
        assert again.returncode == 0 and "nothing to propose" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["qa", "--digest", FIRST], "'qa' is not an environment"),
        (["staging", "--digest", "sha256:abc"], "is not a digest"),
        (["staging"], "name the digest to deploy"),
        (["production", "--from", "staging"], "staging runs no release yet"),
    ],
)
def test_a_refused_proposal_names_why_and_changes_nothing(
    platform: tuple[Path, str], tmp_path: Path, args: list[str], message: str
) -> None:
    clone, _ = platform
    env = {**tool_env(clone), **GIT_IDENTITY}
    repo = generate(tmp_path / "iris-demo", env, DEMO_ANSWERS, lock=False)
    bare = protected_origin(repo, tmp_path / "iris-demo.git", env)
    before = refs(repo), refs(bare), run(["git", "status", "--porcelain"], repo, {}).stdout
    done = paved(env, "deploy", "propose", *args, cwd=repo)
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert (
        refs(repo),
        refs(bare),
        run(["git", "status", "--porcelain"], repo, {}).stdout,
    ) == before
