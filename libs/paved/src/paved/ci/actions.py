"""The GitHub Actions context a CI step reads and writes (act sets the same variables).

One place for the `GITHUB_*` and `ACTIONS_*` variables: the commit, ref and repository a run
builds, the job's token and OIDC token service, the step's outputs and summary, and the log
masks. Off Actions (a laptop), the readers return None or "" and the writers do nothing, so
every step runs the same by hand.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping

__all__ = [
    "id_token_service",
    "in_actions",
    "job_token",
    "mask",
    "repository_owner",
    "repository_url",
    "run_commit",
    "run_id",
    "step_output",
    "summary_file",
]


def in_actions(env: Mapping[str, str] | None = None) -> bool:
    """Whether this runs as a GitHub Actions step (or under act)."""
    return (os.environ if env is None else env).get("GITHUB_ACTIONS") == "true"


def run_commit(env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """The commit and ref (`refs/heads/…`, `refs/tags/…`) the run builds, where set."""
    env = os.environ if env is None else env
    return env.get("GITHUB_SHA") or None, env.get("GITHUB_REF") or None


def repository_url(env: Mapping[str, str] | None = None) -> str | None:
    """The web URL of the repository the run belongs to, where set."""
    env = os.environ if env is None else env
    repository = env.get("GITHUB_REPOSITORY")
    if not repository:
        return None
    return f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{repository}"


def repository_owner(env: Mapping[str, str] | None = None) -> str:
    """The account that owns the run's repository ("" where unset)."""
    return (os.environ if env is None else env).get("GITHUB_REPOSITORY_OWNER", "")


def run_id(env: Mapping[str, str] | None = None) -> str | None:
    """The workflow run's id, where set."""
    return (os.environ if env is None else env).get("GITHUB_RUN_ID") or None


def job_token(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The job's user and token for GitHub's own services, such as ghcr.io ("" where unset)."""
    env = os.environ if env is None else env
    return env.get("GITHUB_ACTOR", ""), env.get("GITHUB_TOKEN", "")


def id_token_service(env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The URL of the job's OIDC token service and the bearer token that asks it.

    None unless the job may ask (`permissions: id-token: write` sets both variables).
    """
    env = os.environ if env is None else env
    url, bearer = env.get("ACTIONS_ID_TOKEN_REQUEST_URL"), env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    return (url, bearer) if url and bearer else None


def mask(secret: str, env: Mapping[str, str] | None = None) -> None:
    """Hide `secret` in the job's log from here on (an Actions workflow command)."""
    if in_actions(env):
        print(f"::add-mask::{secret}", flush=True)


def export_env(values: Mapping[str, str], *, secret: bool = True) -> None:
    """Hand `values` to the job's later steps as variables ($GITHUB_ENV), masked if `secret`.

    Outside a job, the lines `export NAME=value` are printed, for `eval` in a shell.
    """
    target = os.environ.get("GITHUB_ENV")
    for value in values.values() if secret else ():
        mask(value)
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.writelines(f"{key}={value}\n" for key, value in values.items())
        return
    for key, value in values.items():
        print(f"export {key}={shlex.quote(value)}", flush=True)


def step_output(**values: str) -> None:
    """Expose `values` as the step's outputs (`steps.<id>.outputs.<name>`)."""
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.writelines(f"{key}={value}\n" for key, value in values.items())


def summary_file() -> str | None:
    """The step summary's file (Markdown appended to it shows on the run's page)."""
    return os.environ.get("GITHUB_STEP_SUMMARY") or None
