"""Constants and types shared by the test tiers."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
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
def mlflow_server(folder: Path) -> Iterator[str]:
    """`mlflow server` on a free loopback port, its store and artifacts in `folder`; its URL.

    Stopped by PID on the way out.
    """
    import urllib.request

    from ci.golden_path import free_port, running

    port = free_port()
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"sqlite:///{folder / 'server.db'}"),
        *("--default-artifact-root", str(folder / "artifacts"), "--workers", "1"),
    ]
    log = folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    with running(process, ready, timeout=90, failure=lambda: log.read_text()[-3000:]):
        yield f"http://127.0.0.1:{port}"
