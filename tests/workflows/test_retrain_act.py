"""CI tier: a generated repo's retrain.yml under act opens one pull request, only on a win.

The repo serves a weak champion (in its DVC remote, on main). Each run retrains from a
commit that changes the model's parameters: a weaker challenger loses (no pull request, the
summary says why); a stronger one wins (its data and model in the remote, one pull request
on the GitHub stand-in with both models' metrics on the same test set, its branch pushed to
a bare origin that refuses main); a second win updates that same pull request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ci.golden_path import DEMO_ANSWERS, generate, run, tool_env
from ci.snapshot import GIT_IDENTITY
from tests.lib.act_runner import Team
from tests.lib.fake_github import serving
from tests.lib.helpers import protected_origin

pytestmark = [pytest.mark.workflows, pytest.mark.usefixtures("foreign_ci_context")]

TOKEN = "gh-stand-in-token-retrain"
BRANCH = "paved/retrain-iris-demo"


@pytest.fixture(scope="module")
def team(platform: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Team:
    """The team repo: a weak champion trained, pushed to its DVC remote and committed."""
    clone, sha = platform
    work = tmp_path_factory.mktemp("retrain")
    env = {**tool_env(clone), **GIT_IDENTITY}
    repo = generate(work / "iris-demo", env, {**DEMO_ANSWERS, "dvc_remote_url": str(work / "dvc")})
    set_c(repo, 0.001)
    run(["uv", "run", "--frozen", "dvc", "repro"], repo, env)
    run(["uv", "run", "--frozen", "dvc", "push"], repo, env)
    run(["git", "add", "--all"], repo, env)
    run(["git", "commit", "--quiet", "-m", "A weak champion"], repo, env)
    bare = protected_origin(repo, work / "origin.git", env)
    # act names the repository after origin's URL; pushes go to the bare one.
    run(["git", "remote", "set-url", "origin", "https://github.com/acme/iris-demo.git"], repo, env)
    run(["git", "remote", "set-url", "--push", "origin", str(bare)], repo, env)
    return Team(repo, env, clone, sha, work)


def set_c(repo: Path, value: float) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["C"] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def github(team: Team) -> Iterator[Path]:
    state = team.work / "github.json"
    repo = {"full_name": "acme/iris-demo", "default_branch": "main"}
    state.write_text(json.dumps({"token": TOKEN, "repos": [repo], "pulls": []}))
    with serving(state, team.work / "github.log") as api:
        team.extra = ["--env", f"PAVED_GITHUB_API={api}", "--secret", f"GITHUB_TOKEN={TOKEN}"]
        yield state
        team.extra = []


def retrain(team: Team, c: float) -> tuple[int, str]:
    """Commit C=`c` on main (as a team would, without running the pipeline), run retrain.yml."""
    set_c(team.repo, c)
    run(["git", "commit", "--quiet", "--all", "-m", f"Try C={c}"], team.repo, team.env)
    return team.act("retrain.yml", event="workflow_dispatch", inputs={})


def test_a_challenger_that_loses_opens_nothing_and_one_that_wins_one_pull_request(
    team: Team, github: Path
) -> None:
    bare = team.work / "origin.git"
    main = run(["git", "rev-parse", "main"], bare, team.env).stdout

    code, output = retrain(team, 0.0005)
    assert code == 0, output[-6000:]
    assert "retrain: the challenger lost, no pull request: kept champion" in output, output[-4000:]
    assert "(both scored on the same test set, md5 " in output
    assert json.loads(github.read_text())["pulls"] == []
    assert run(["git", "branch", "--list", BRANCH], bare, team.env).stdout == ""

    code, output = retrain(team, 1.0)
    assert code == 0, output[-6000:]
    assert "retrain: the challenger won: promoted iris-demo" in output, output[-4000:]
    assert "proposed the retrained champion: https://github.invalid/acme/iris-demo/pull/" in output
    [pull] = json.loads(github.read_text())["pulls"]
    assert (pull["head"], pull["base"], pull["state"]) == (BRANCH, "main", "open")
    assert pull["title"].startswith("Retrain iris-demo: f1_macro ")
    # dvc metrics diff --md: the champion and the challenger on the same test set.
    table = re.search(r"^\| Path .*\| champion .*\| challenger .*$", pull["body"], re.MULTILINE)
    assert table, pull["body"]
    assert re.search(r"^\| metrics\.json\s+\| f1_macro ", pull["body"], re.MULTILINE)
    # One commit on the team's main (the one the run checked out): those three files only.
    parent = run(["git", "rev-parse", f"{BRANCH}^"], bare, team.env).stdout
    assert parent == run(["git", "rev-parse", "HEAD"], team.repo, team.env).stdout
    changed = run(
        ["git", "diff", "--name-only", f"{BRANCH}^", BRANCH], bare, team.env
    ).stdout.split()
    assert sorted(changed) == ["docs/model-card.md", "dvc.lock", "metrics.json"]
    card = run(["git", "show", f"{BRANCH}:docs/model-card.md"], bare, team.env).stdout
    assert "## Current champion" in card and "| f1_macro |" in card
    first_body, first_commit = pull["body"], run(["git", "rev-parse", BRANCH], bare, {}).stdout

    code, output = retrain(team, 3.0)
    assert code == 0, output[-6000:]
    [pull] = json.loads(github.read_text())["pulls"]  # the same pull request, updated
    assert pull["body"] != first_body
    assert run(["git", "rev-parse", BRANCH], bare, {}).stdout != first_commit
    assert run(["git", "rev-parse", "main"], bare, team.env).stdout == main, "main was pushed"
    assert TOKEN not in output
