"""The model registry: register, champion/challenger promotion, and the champion artifact.

The alias `champion` marks the model version that serves. A newly trained version (the
challenger) takes the alias only when it beats the champion on the configured metric;
otherwise the champion stays and the decision says why. The champion is also copied to a
plain folder (`models/champion`, tracked by DVC) so that serving and image builds never
need the tracking database.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from paved_ml._champion import CHAMPION_FILE, read_champion_file, write_champion_file
from paved_ml.config import ProjectConfig
from paved_ml.errors import RegistryError
from paved_ml.tracking import use_tracking

__all__ = [
    "CHAMPION_ALIAS",
    "CHAMPION_FILE",
    "Decision",
    "champion",
    "decision_record",
    "export_champion",
    "load_champion",
    "promote_if_better",
    "read_champion_file",
    "register",
    "save_champion",
]

CHAMPION_ALIAS = "champion"


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The outcome of a champion/challenger comparison."""

    model_name: str
    version: str
    metric: str
    value: float
    promoted: bool
    champion_version: str | None
    champion_value: float | None

    @property
    def message(self) -> str:
        """One line for a person reading the pipeline's output."""
        challenger = f"{self.model_name} v{self.version} ({self.metric}={self.value:.4f})"
        if self.champion_version is None:
            return f"promoted {challenger} to '{CHAMPION_ALIAS}': there was no champion"
        champ = f"v{self.champion_version} ({self.metric}={_fmt(self.champion_value)})"
        if self.promoted:
            return f"promoted {challenger} to '{CHAMPION_ALIAS}': it beats {champ}"
        return f"kept champion {champ}: challenger {challenger} does not beat it"


def register(config: ProjectConfig, model_uri: str, *, tags: dict[str, str] | None = None) -> str:
    """Register `model_uri` under the project's model name; return the new version."""
    use_tracking(config)
    version = mlflow.register_model(model_uri, config.model_name, tags=tags)
    return str(version.version)


def champion(config: ProjectConfig) -> Any | None:
    """The model version holding the champion alias, or None when there is none."""
    use_tracking(config)
    try:
        return MlflowClient().get_model_version_by_alias(config.model_name, CHAMPION_ALIAS)
    except MlflowException as exc:
        if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
            return None
        raise


def promote_if_better(
    config: ProjectConfig,
    version: str,
    *,
    metric: str,
    value: float,
    greater_is_better: bool = True,
) -> Decision:
    """Give `version` the champion alias only if its `value` of `metric` beats the champion's.

    The champion's figure is read from the run that produced it, so the comparison holds
    whichever machine trained it. A tie keeps the champion.
    """
    client = MlflowClient()
    current = champion(config)
    champion_value: float | None = None
    if current is not None:
        if str(current.version) == str(version):
            raise RegistryError(f"{config.model_name} v{version} is already the champion")
        champion_value = client.get_run(current.run_id).data.metrics.get(metric)
    if champion_value is None:
        promoted = True
    else:
        promoted = value > champion_value if greater_is_better else value < champion_value
    if promoted:
        client.set_registered_model_alias(config.model_name, CHAMPION_ALIAS, version)
    return Decision(
        model_name=config.model_name,
        version=str(version),
        metric=metric,
        value=value,
        promoted=promoted,
        champion_version=None if current is None else str(current.version),
        champion_value=champion_value,
    )


def save_champion(model_dir: Path, dest: Path, decision: Decision) -> Path:
    """Copy a promoted MLflow model folder to `dest`, with a champion.json describing it."""
    if not decision.promoted:
        raise RegistryError(f"{decision.model_name} v{decision.version} was not promoted")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(model_dir, dest)
    metrics = {decision.metric: decision.value}
    write_champion_file(dest, decision.model_name, decision.version, metrics)
    return dest


def export_champion(config: ProjectConfig, dest: Path) -> Path:
    """Download the registry's champion to `dest` (for a repo whose champion folder is gone)."""
    current = champion(config)
    if current is None:
        raise RegistryError(f"{config.model_name} has no '{CHAMPION_ALIAS}' in the registry")
    if dest.exists():
        shutil.rmtree(dest)
    uri = f"models:/{config.model_name}@{CHAMPION_ALIAS}"
    mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest))
    metrics = MlflowClient().get_run(current.run_id).data.metrics
    write_champion_file(dest, config.model_name, str(current.version), metrics)
    return dest


def load_champion(config: ProjectConfig) -> Any:
    """Load the registry's champion (as a pyfunc model) by its alias."""
    if champion(config) is None:
        raise RegistryError(f"{config.model_name} has no '{CHAMPION_ALIAS}' in the registry")
    return mlflow.pyfunc.load_model(f"models:/{config.model_name}@{CHAMPION_ALIAS}")


def decision_record(decision: Decision) -> dict[str, Any]:
    """The decision as JSON-ready data, for a stage's output file."""
    return {**asdict(decision), "message": decision.message}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
