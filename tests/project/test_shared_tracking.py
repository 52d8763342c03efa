"""Project tier: team repos on the fleet's shared services.

One `mlflow server` with MLflow's basic-auth app (nobody sees what they were not given), its
artifacts in an S3 bucket; DVC's remote in the same bucket; moto serves S3 on loopback.
A team repo generated for it trains, registers and promotes there, and pushes and pulls its
data there, with credentials from the environment only. A second team's repo shares the
server without seeing the first team's model until it is granted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
import tomlkit

from ci.golden_path import DEMO_ANSWERS, generate, run, tool_env
from tests.lib.helpers import mlflow_server, moto_server

pytestmark = pytest.mark.project

BUCKET = "fleet-shared"
ADMIN = ("admin", "admin-password-of-the-fleet")
TEAMS = {"team-a": "password-of-team-a", "team-b": "password-of-team-b"}
# moto takes any keys; these stand for the server's own and for each team's.
SERVER_KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIASERVER0000000000",
    "AWS_SECRET_ACCESS_KEY": "server-secret",
}
TEAM_KEYS = {"AWS_ACCESS_KEY_ID": "AKIATEAMA00000000000", "AWS_SECRET_ACCESS_KEY": "team-a-secret"}


@dataclass(frozen=True)
class Shared:
    tracking: str
    s3: str

    def client(self, user: str) -> Any:
        """An MlflowClient that signs in as `user`."""
        from mlflow import MlflowClient

        with self.signed_in(user):
            return _Signed(MlflowClient(self.tracking, self.tracking), self, user)

    @contextlib.contextmanager
    def signed_in(self, user: str) -> Iterator[None]:
        password = ADMIN[1] if user == ADMIN[0] else TEAMS[user]
        login = {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
        with mock.patch.dict(os.environ, login):
            yield

    def keys(self, prefix: str) -> list[str]:
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=self.s3, **_boto(SERVER_KEYS))
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


class _Signed:
    """Each call of the wrapped client made as one user (MLflow reads the login per request)."""

    def __init__(self, client: Any, shared: Shared, user: str) -> None:
        self._client, self._shared, self._user = client, shared, user

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._shared.signed_in(self._user):
                return method(*args, **kwargs)

        return call


def _boto(keys: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": keys["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": keys["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """moto's S3 with the fleet's bucket; the authenticated server over it; one user a team."""
    from mlflow.server import get_app_client

    folder = tmp_path_factory.mktemp("shared-services")
    with moto_server() as s3:
        client = boto3.client("s3", region_name="us-east-1", endpoint_url=s3, **_boto(SERVER_KEYS))
        client.create_bucket(Bucket=BUCKET)
        server_env = {
            **SERVER_KEYS,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": s3,
        }
        with mlflow_server(
            folder, auth=ADMIN[1], artifacts=f"s3://{BUCKET}/mlflow", env=server_env
        ) as tracking:
            services = Shared(tracking, s3)
            with services.signed_in(ADMIN[0]):
                users = get_app_client("basic-auth", tracking_uri=tracking)
                for user, password in TEAMS.items():
                    users.create_user(user, password)
            yield services


@dataclass(frozen=True)
class Team:
    path: Path
    env: dict[str, str]

    def run(self, *cmd: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
        done = run(["uv", "run", "--frozen", *cmd], cwd or self.path, env or self.env)
        return done.stdout + done.stderr

    def git(self, *args: str) -> str:
        return run(["git", *args], self.path, self.env).stdout


def _team_env(base: dict[str, str], shared: Shared, user: str) -> dict[str, str]:
    """What a data scientist of `user`'s team exports: the two logins, nothing committed."""
    return {
        **base,
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": TEAMS[user],
        **TEAM_KEYS,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": shared.s3,
    }


@pytest.fixture(scope="module")
def team_a(
    platform: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory, shared: Shared
) -> Team:
    """A repo generated for the shared services: the server's URL and an S3 remote."""
    clone, _ = platform
    work = tmp_path_factory.mktemp("team-a")
    env = tool_env(clone, GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@example.com")
    env |= {"GIT_COMMITTER_NAME": "A", "GIT_COMMITTER_EMAIL": "a@example.com"}
    answers = {
        **DEMO_ANSWERS,
        "team": "team-a",
        "mlflow_tracking_uri": shared.tracking,
        "dvc_remote": "s3",
        "dvc_remote_url": f"s3://{BUCKET}/dvc/iris-demo",
    }
    path = generate(work / "iris-demo", env, answers)
    run(["uv", "sync", "--frozen"], path, env)
    return Team(path, _team_env(env, shared, "team-a"))


def test_a_team_repo_trains_registers_and_promotes_on_the_shared_server(
    team_a: Team, shared: Shared, tmp_path: Path
) -> None:
    out = team_a.run("dvc", "repro")
    assert "promoted iris-demo v1" in out and "to 'champion': there was no champion" in out, out

    admin = shared.client(ADMIN[0])
    champion = admin.get_model_version_by_alias("iris-demo", "champion")
    assert champion.version == "1"
    run_ = admin.get_run(champion.run_id)
    assert run_.data.tags["paved.team"] == "team-a"
    # The model's files are in the bucket, written by the server: the team holds no S3 key
    # of the server's, and its client only spoke HTTP to the server.
    model_files = [key for key in shared.keys("mlflow/") if key.endswith("/MLmodel")]
    assert model_files, shared.keys("mlflow/")

    # DVC pushes to, and a fresh clone pulls from, the same bucket.
    team_a.git("add", "--all")
    team_a.git("commit", "--quiet", "-m", "Train the champion")
    team_a.run("dvc", "push")
    assert shared.keys("dvc/iris-demo/files/md5/")
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", str(team_a.path), str(clone)], tmp_path, team_a.env)
    run(["uv", "sync", "--frozen"], clone, team_a.env)
    team_a.run("dvc", "pull", cwd=clone)
    for name in ("champion.json", "MLmodel"):
        pulled = (clone / "models/champion" / name).read_bytes()
        assert pulled == (team_a.path / "models/champion" / name).read_bytes()


def test_the_credentials_come_from_the_environment_only(
    team_a: Team, shared: Shared, tmp_path: Path
) -> None:
    """No secret in any committed file or commit, and without the login the server refuses."""
    team_a.run("dvc", "repro")  # whatever the earlier test left, a full pipeline first
    team_a.git("add", "--all")
    subprocess.run(["git", "commit", "--quiet", "-m", "Run"], cwd=team_a.path, env=team_a.env)
    history = team_a.git("log", "--all", "-p", "--format=%H %an %s %b")
    tracked = team_a.git("grep", "-I", "--no-color", "-e", ".", "--", ".")
    secrets = [ADMIN[1], *TEAMS.values(), *TEAM_KEYS.values(), *SERVER_KEYS.values()]
    for secret in secrets:
        assert secret not in history and secret not in tracked, secret
    assert shared.tracking in (team_a.path / "pyproject.toml").read_text()  # only the URL

    # Without the environment's login the server refuses the repo's own registry reader.
    anonymous = {k: v for k, v in team_a.env.items() if not k.startswith("MLFLOW_TRACKING_")}
    done = _registry_reader(team_a.path, anonymous)
    assert done.returncode != 0
    refusal = (
        f"ConfigError: the tracking server {shared.tracking} refused a request without a login"
        " (401): export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    )
    assert refusal in done.stderr, done.stderr


def _registry_reader(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The repo's own registry reader (what the pipeline's gate asks first), run in `path`."""
    reader = "from paved_ml.config import load_config; from paved_ml.registry import champion; "
    return subprocess.run(
        ["uv", "run", "--frozen", "python", "-c", reader + "champion(load_config())"],
        cwd=path,
        env=env,
        capture_output=True,
        text=True,
    )


def test_two_teams_share_the_server_without_seeing_each_others_models(
    team_a: Team, shared: Shared, tmp_path: Path
) -> None:
    # Team B's repo: the same code under its own names, in its own checkout.
    path = tmp_path / "fraud"
    run(["git", "clone", "--quiet", str(team_a.path), str(path)], tmp_path, team_a.env)
    team_b = Team(path, _team_env(team_a.env, shared, "team-b"))
    run(["uv", "sync", "--frozen"], path, team_b.env)
    # Before it is renamed, the checkout names team A's experiment: team B's login is refused.
    denied = _registry_reader(path, team_b.env)
    assert denied.returncode != 0
    assert (
        f"the tracking server {shared.tracking} gives team-b no access to experiment "
        "'iris-demo' (403)"
    ) in denied.stderr, denied.stderr

    pyproject = path / "pyproject.toml"
    document = tomlkit.parse(pyproject.read_text())
    paved = document["tool"]["paved"]
    paved.update({"team": "team-b", "project": "fraud", "model-name": "fraud"})
    pyproject.write_text(tomlkit.dumps(document))
    shutil.rmtree(path / "models", ignore_errors=True)
    out = team_b.run("dvc", "repro", "--force")
    assert "promoted fraud v1" in out, out

    a, b = shared.client("team-a"), shared.client("team-b")
    assert [model.name for model in a.search_registered_models()] == ["iris-demo"]
    assert [model.name for model in b.search_registered_models()] == ["fraud"]
    assert "iris-demo" not in {experiment.name for experiment in b.search_experiments()}
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="403"):
        b.get_model_version_by_alias("iris-demo", "champion")

    # Where the permissions say so: team A's model, granted to team B to read.
    from mlflow.server import get_app_client

    with shared.signed_in(ADMIN[0]):
        users = get_app_client("basic-auth", tracking_uri=shared.tracking)
        users.grant_user_permission("team-b", "registered_model", "iris-demo", "READ")
    assert {model.name for model in b.search_registered_models()} == {"iris-demo", "fraud"}
    assert b.get_model_version_by_alias("iris-demo", "champion").version
    with pytest.raises(MlflowException, match="403"):
        b.set_registered_model_alias("iris-demo", "champion", "1")
