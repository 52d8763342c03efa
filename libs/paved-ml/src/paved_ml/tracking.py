"""MLflow runs that carry a team repo's lineage.

Every run a pipeline stage opens through `lineage_run` is tagged with the owning team,
the project, the platform release that rendered the repo, the paved-ml version, the git
commit (and whether the tree was dirty) and the DVC md5 of each data input, so any
registered model can be traced back to the exact code and data that made it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
from mlflow.exceptions import ERROR_CODE_TO_HTTP_STATUS, MlflowException
from mlflow.tracking import MlflowClient

from paved_ml import __version__
from paved_ml.config import ProjectConfig
from paved_ml.data import file_md5
from paved_ml.errors import ConfigError

__all__ = [
    "TAG_PREFIX",
    "lineage_run",
    "lineage_tags",
    "log_monitoring",
    "pinned_requirements",
    "use_tracking",
]

TAG_PREFIX = "paved."
#: What MLflow's URI setters also write into os.environ, for child processes to inherit.
_STORE_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def use_tracking(config: ProjectConfig) -> str:
    """Point MLflow at the project's tracking store and experiment; return the experiment id.

    MLflow's `set_tracking_uri` and `set_registry_uri` also write the URI into `os.environ`;
    this leaves the environment as it found it. The process's own MLflow calls use the
    store set here, and a process it starts reads the project's store as this one did
    (MLFLOW_TRACKING_URI if the caller set it, else [tool.paved]), not whatever this
    process last tracked to.
    """
    saved = {name: os.environ.get(name) for name in _STORE_VARIABLES}
    try:
        mlflow.set_tracking_uri(config.tracking_uri)
        mlflow.set_registry_uri(config.tracking_uri)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    client = MlflowClient()
    try:
        experiment = client.get_experiment_by_name(config.project)
        if experiment is None:
            # An embedded store keeps its artifacts beside the database, whatever the cwd.
            location = (
                (config.root / "mlruns").as_uri()
                if config.tracking_uri.startswith("sqlite")
                else None
            )
            experiment_id: str = client.create_experiment(
                config.project, artifact_location=location
            )
        else:
            experiment_id = experiment.experiment_id
    except MlflowException as exc:
        refusal = _refusal(config, exc)
        if refusal is None:
            raise
        raise ConfigError(refusal) from exc
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _refusal(config: ProjectConfig, exc: MlflowException) -> str | None:
    """What a server that turned the login away means, in words; None for other errors."""
    status = ERROR_CODE_TO_HTTP_STATUS.get(exc.error_code)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if status == 401:
        who = f"the login of {user!r}" if user else "a request without a login"
        return (
            f"the tracking server {config.tracking_uri} refused {who} (401): export "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
        )
    if status == 403:
        return (
            f"the tracking server {config.tracking_uri} gives {user or 'this login'} no access "
            f"to experiment {config.project!r} (403): ask its admin for a permission on it"
        )
    return None


def lineage_tags(config: ProjectConfig, inputs: Sequence[Path] = ()) -> dict[str, str]:
    """The tags that tie a run to its team, platform release, code and data."""
    commit, dirty = _git_state(config.root)
    tags = {
        f"{TAG_PREFIX}team": config.team,
        f"{TAG_PREFIX}project": config.project,
        f"{TAG_PREFIX}platform_version": config.platform_version,
        f"{TAG_PREFIX}paved_ml_version": __version__,
        f"{TAG_PREFIX}git.dirty": str(dirty).lower(),
        "mlflow.source.git.commit": commit,
    }
    for path in inputs:
        absolute = path if path.is_absolute() else config.root / path
        relative = absolute.relative_to(config.root).as_posix()
        tags[f"{TAG_PREFIX}data.{relative}.md5"] = file_md5(absolute)
    return tags


@contextmanager
def lineage_run(
    config: ProjectConfig,
    *,
    run_name: str | None = None,
    inputs: Sequence[Path] = (),
    run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Open (or resume, given `run_id`) an MLflow run carrying the lineage tags."""
    use_tracking(config)
    tags = None if run_id else lineage_tags(config, inputs)
    with mlflow.start_run(run_id=run_id, run_name=run_name, tags=tags) as run:
        yield run


def log_monitoring(
    config: ProjectConfig,
    *,
    kind: str,
    failed: bool,
    metrics: Mapping[str, float],
    model_version: str | None = None,
    summary: Path | None = None,
) -> str:
    """Log one monitoring check's result (`kind`: drift, accuracy) as a run; return its id.

    The run is in the project's experiment, named `monitoring: <kind>`, tagged
    `paved.monitoring.kind`, `.failed` and `.model_version` besides the lineage tags, with
    each finite figure as a metric and the check's JSON summary as an artifact. The
    registered model's tag `paved.monitoring.<kind>` holds the latest result (state, time,
    version, run id), which `paved status --tracking` reads for the whole fleet at once.
    """
    with lineage_run(config, run_name=f"monitoring: {kind}") as run:
        mlflow.set_tags(
            {
                f"{TAG_PREFIX}monitoring.kind": kind,
                f"{TAG_PREFIX}monitoring.failed": str(failed).lower(),
                f"{TAG_PREFIX}monitoring.model_name": config.model_name,
                f"{TAG_PREFIX}monitoring.model_version": model_version or "",
            }
        )
        finite = {name: float(value) for name, value in metrics.items() if math.isfinite(value)}
        if finite:
            mlflow.log_metrics(finite)
        if summary is not None and summary.is_file():
            mlflow.log_artifact(str(summary), artifact_path="monitoring")
    run_id: str = run.info.run_id
    latest = {
        "state": "failed" if failed else "passed",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.info.start_time / 1000)),
        "version": model_version or "",
        "run_id": run_id,
    }
    try:  # the model's latest check of this kind, where a fleet view reads it in one search
        MlflowClient().set_registered_model_tag(
            config.model_name, f"{TAG_PREFIX}monitoring.{kind}", json.dumps(latest)
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":  # no model registered yet: the run only
            raise
    return run_id


def pinned_requirements(*distributions: str) -> list[str]:
    """`name==version` for each installed distribution, to log with a model.

    Handing MLflow the requirements skips its inference, which imports the model in a
    subprocess and costs seconds on every `log_model`/`save_model`.
    """
    pins = []
    for name in distributions:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError as exc:
            raise ValueError(f"{name} is not installed, so it cannot be pinned") from exc
    return pins


def _git_state(root: Path) -> tuple[str, bool]:
    """The commit checked out at `root` and whether the tree has changes, or 'unknown'."""
    try:
        commit = _git(root, "rev-parse", "HEAD")
        dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return "unknown", False
    return commit, dirty


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True, timeout=60
    ).stdout.strip()
