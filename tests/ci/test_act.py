"""CI tier: a generated repo's own ci.yml and release.yml run to success under act.

act runs the jobs on this host (`-P ubuntu-latest=-self-hosted`) and serves the platform's
reusable workflows from the throwaway release (`--local-repository acme/paved@<sha>=...`).
The push event carries a hostile commit message: no workflow may execute it. The team
pushes to its own registry (not ghcr.io, not a cloud), which asks for the password given as
the repository secret REGISTRY_PASSWORD.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from base_image import ensure_base_image
from golden_path import IRIS_ROW, generate, serve_image, tool_env
from helpers import BASE_ANSWERS
from registry import Registry, local_registry

pytestmark = pytest.mark.ci

ACT = str(Path(sys.executable).parent / "act")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PUSHER, PASSWORD = "paved-ci", "registry-secret-3c1f9a"


class Team:
    def __init__(self, repo: Path, env: dict[str, str], clone: Path, sha: str, work: Path) -> None:
        self.repo, self.env, self.clone, self.sha, self.work = repo, env, clone, sha, work
        self.canary = work / "canary"

    def event(self) -> Path:
        message = f'x"; touch {self.canary}; echo "'
        event = {
            "ref": "refs/heads/main",
            "repository": {
                "default_branch": "main",
                "full_name": "acme/iris-demo",
                "name": "iris-demo",
                "owner": {"login": "acme"},
            },
            "head_commit": {"message": message, "id": self.sha},
        }
        path = self.work / "push.json"
        path.write_text(json.dumps(event))
        return path

    def act(self, workflow: str, *extra: str) -> tuple[int, str]:
        """Run one workflow on a push event; return the exit code and the plain output."""
        done = subprocess.run(
            [
                ACT,
                "push",
                "-W",
                f".github/workflows/{workflow}",
                "-P",
                "ubuntu-latest=-self-hosted",
                "--local-repository",
                f"acme/paved@{self.sha}={self.clone}",
                "-e",
                str(self.event()),
                *extra,
            ],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
        )
        return done.returncode, ANSI.sub("", done.stdout + done.stderr)


@pytest.fixture(scope="module")
def team(platform: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Team:
    clone, sha = platform
    work = tmp_path_factory.mktemp("act")
    # buildah's logins go to a file of this test's, not the machine's.
    authfile = work / "auth.json"
    authfile.write_text('{"auths": {}}')
    env = tool_env(clone, REGISTRY_AUTH_FILE=str(authfile))
    answers = {
        **BASE_ANSWERS,
        "dvc_remote_url": str(work / "remote"),
        "container_registry": "registry.acme.example/ml",
    }
    repo = generate(work / "iris-demo", env, answers)
    return Team(repo, env, clone, sha, work)


def test_ci_workflow_succeeds_under_act(team: Team) -> None:
    code, output = team.act("ci.yml")
    assert code == 0, output[-6000:]
    assert "Job succeeded" in output
    for check in ("lint", "format", "tests", "pipeline", "bento"):
        assert re.search(rf"ok {check} \(", output), f"check {check} did not run"
    assert not team.canary.exists(), "a commit message was executed"


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    with local_registry(users={PUSHER: PASSWORD}) as running:
        yield running


def test_release_workflow_pushes_an_image_that_serves(team: Team, registry: Registry) -> None:
    base = ensure_base_image()
    code, output = team.act(
        "release.yml",
        "--var",
        f"PAVED_REGISTRY={registry.host}/acme",
        "--var",
        f"PAVED_BASE_IMAGE={base}",
        "--var",
        "PAVED_REGISTRY_TLS_VERIFY=false",
        "--var",
        f"PAVED_REGISTRY_USERNAME={PUSHER}",
        "--secret",
        f"REGISTRY_PASSWORD={PASSWORD}",
    )
    assert code == 0, output[-6000:]
    assert not team.canary.exists(), "a commit message was executed"
    assert f"logged in to {registry.host} as {PUSHER}" in output
    # The generated repo never pushed to its DVC remote: the release says it trains instead.
    assert "training the champion from the shipped data" in output
    assert PASSWORD not in output, "the registry password reached the log"
    match = re.search(
        rf"pushed ({re.escape(registry.host)}/acme/iris-demo)@(sha256:[0-9a-f]{{64}})", output
    )
    assert match, output[-4000:]
    image, digest = match.groups()

    try:
        with serve_image(f"{image}@{digest}", team.repo, team.env) as service:
            status, body = service.post("/predict", {"rows": [IRIS_ROW]})
            assert status == 200 and body["predictions"] == [2]
            status, body = service.post(
                "/predict", {"rows": [{**IRIS_ROW, "petal_length_cm": None}]}
            )
            assert status == 400
            assert ["rows", 0, "petal_length_cm"] in [e["loc"] for e in body["detail"]]
    finally:
        subprocess.run(["buildah", "rmi", "--force", f"{image}@{digest}"], capture_output=True)
