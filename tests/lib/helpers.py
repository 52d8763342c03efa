"""Constants and types shared by the test tiers."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

RELEASE = "v0.1.0"
Render = Callable[..., Path]

#: 343 bytes of YAML that expand to 9^9 strings (a MemoryError, or minutes) unless refused.
ALIAS_BOMB = "\n".join(
    ['_a: &a ["x","x","x","x","x","x","x","x","x"]']
    + [
        f"_{b}: &{b} [*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a}]"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    + ["_bomb: *i", ""]
)

#: Answer sets the render tier covers (on top of DEMO_ANSWERS).
MATRIX = [
    {},
    {"python_version": "3.12", "retrain_schedule": "30 2 * * *", "retrain_on_drift": True},
    {"dvc_remote": "s3", "model_framework": "xgboost"},
    {"dvc_remote": "gs", "dvc_remote_url": "gs://ml-bucket/iris"},
    {"dvc_remote": "azure", "python_version": "3.12", "deploy_target": "none"},
    {"deploy_target": "kubernetes", "service_cpu": "2", "service_memory": "768Mi"},
    {"mlflow_tracking_uri": "http://mlflow.internal:5000", "org": "Data-Corp"},
    {"container_registry": "registry.internal:5000/ml", "package_name": "iris_model"},
    # Human text is escaped for each file it lands in: this name is inert everywhere.
    {
        "project_name": 'Iris """ + __import__("os").getpid() + """ "',
        "distribution_name": "iris-demo",
    },
]


def matrix_id(answers: dict[str, str]) -> str:
    return "-".join(f"{k}={v}" for k, v in answers.items()) or "defaults"


def fit(iris: Any, c: float) -> Any:
    """A logistic regression on the iris frame of tests/libs (columns sl, sw, pl, pw)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=500).fit(iris[["sl", "sw", "pl", "pw"]], iris.species)


def paved(
    env: Mapping[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The `paved` CLI of this workspace, as a user runs it (output captured, not checked)."""
    return subprocess.run(
        [sys.executable, "-m", "paved", *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=900,
    )


def refs(repo: Path) -> str:
    """Every ref of `repo` with the commit it points at, one per line (to compare states)."""
    return subprocess.run(
        ["git", "for-each-ref", "--format=%(refname) %(objectname)"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def commit_all(
    repo: Path, env: Mapping[str, str], message: str, *, allow_empty: bool = False
) -> None:
    """`git add --all` and commit in `repo` (hooks skipped; `allow_empty` for no change)."""
    empty = ["--allow-empty"] if allow_empty else []
    for command in (["add", "--all"], ["commit", "--quiet", "--no-verify", *empty, "-m", message]):
        subprocess.run(["git", *command], cwd=repo, env=dict(env), check=True, capture_output=True)


#: A bare remote's pre-receive hook that refuses every push to main: what reaches main fails.
PROTECT_MAIN = """#!/bin/sh
while read old new ref; do
  if [ "$ref" = "refs/heads/main" ]; then echo "main is protected" >&2; exit 1; fi
done
"""


def protected_origin(repo: Path, origin: Path, env: Mapping[str, str]) -> Path:
    """A bare clone of `repo` at `origin` that refuses pushes to main, added as its origin."""
    for command, cwd in (
        (["git", "clone", "--quiet", "--bare", str(repo), str(origin)], repo.parent),
        (["git", "remote", "add", "origin", str(origin)], repo),
        (["git", "fetch", "--quiet", "origin"], repo),
    ):
        subprocess.run(command, cwd=cwd, env=dict(env), check=True, capture_output=True)
        if command[1] == "clone":
            hook = origin / "hooks" / "pre-receive"
            hook.write_text(PROTECT_MAIN)
            hook.chmod(0o755)
    return origin


@contextlib.contextmanager
def mlflow_server(
    folder: Path,
    *,
    auth: str = "",
    artifacts: str = "",
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """`mlflow server` on a free loopback port, its store and artifacts in `folder`; its URL.

    `auth` is an admin password: the server runs MLflow's basic-auth app, where nobody sees
    what they were not given (`default_permission = NO_PERMISSIONS`), its user store in
    `folder`. `artifacts` is where the server keeps artifacts it serves (for example an S3
    URL; `env` then holds that store's keys, which only the server sees). Stopped by PID on
    the way out.
    """
    import os
    import urllib.request

    from ci.golden_path import free_port, running

    port = free_port()
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--workers", "1"),
    ]
    if artifacts:
        command += ["--artifacts-destination", artifacts]
    else:
        command += ["--default-artifact-root", str(folder / "artifacts")]
    server_env = {**os.environ, **(env or {})}
    if auth:
        config = folder / "basic_auth.ini"
        config.write_text(
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{folder / 'users.db'}\n"
            "admin_username = admin\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        command += ["--app-name", "basic-auth"]
        server_env |= {
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": auth,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-secret-for-the-test-server-only",
        }
    log = folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=server_env,
        )

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    with running(process, ready, timeout=90, failure=lambda: log.read_text()[-3000:]):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's AWS emulator (S3, STS, ECR, ...) on a free loopback port; its URL."""
    from ci.golden_path import free_port

    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with loopback_server(command, port):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def loopback_server(command: list[str], port: int) -> Iterator[int]:
    """Run a loopback server until it answers HTTP on `port`; its PID; stopped by PID."""
    import urllib.error
    import urllib.request

    from ci.golden_path import running

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
        except urllib.error.HTTPError:
            return True  # an error status is an answer
        except OSError:
            return False
        return True

    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    failure = f"{command[2]} did not start on port {port}"
    with running(process, answers, timeout=30, failure=lambda: failure):
        yield process.pid


def seed_model(
    store: str,
    *,
    project: str,
    model: str,
    figures: list[float],
    deployed: Mapping[str, str] | None = None,
    monitoring: Sequence[tuple[str, bool]] = (),
    root: Path | None = None,
) -> None:
    """Give tracking store `store` a team repo's model history, through paved_ml's own calls.

    One training run and version per figure of `f1_macro`, each through the champion gate;
    `deployed` maps staging/production to a version; `monitoring` lists checks (drift,
    accuracy) in the order they ran and whether each failed, logged as the jobs log them.
    """
    import mlflow
    from mlflow import MlflowClient
    from paved_ml.config import ProjectConfig
    from paved_ml.registry import promote_if_better, record_deployed
    from paved_ml.tracking import log_monitoring, use_tracking

    config = ProjectConfig(
        root=root or Path.cwd(),
        team="team",
        project=project,
        model_name=model,
        tracking_uri=store,
        platform_version=RELEASE,
    )
    experiment = use_tracking(config)
    client = MlflowClient(store, store)
    client.create_registered_model(model)
    for value in figures:
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_metric("f1_macro", value)
        source = f"runs:/{run.info.run_id}/model"
        version = client.create_model_version(model, source, run_id=run.info.run_id).version
        promote_if_better(config, str(version), metric="f1_macro", value=value, settle=0)
    for environment, version in (deployed or {}).items():
        record_deployed(config, environment, version)
    for kind, failed in monitoring:
        log_monitoring(config, kind=kind, failed=failed, metrics={"share": 0.5})


def npm_tool(package: str, version: str) -> Path:
    """`package@version` installed once into the tools cache by npm; its node_modules folder.

    From the npm registry on first use (npm must be on PATH), then reused by every run.
    """
    import os
    import shutil

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    name = package.lstrip("@").replace("/", "-")
    folder = cache / "paved" / "tools" / f"{name}-{version}"
    modules = folder / "node_modules"
    if not (modules / package / "package.json").exists():
        npm = shutil.which("npm")
        assert npm, f"npm is needed for {package} (Debian: apt-get install npm)"
        install = [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund"]
        done = subprocess.run(
            [*install, "--silent", f"{package}@{version}"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    return modules
