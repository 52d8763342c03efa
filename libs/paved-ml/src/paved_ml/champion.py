"""The champion folder: its record (champion.json), its MLmodel file, and the model in it.

A champion folder (`models/champion` in a team repo) is an MLflow model folder plus
champion.json. `load_champion` reads it, and `Champion.predict` is how the service, batch
scoring and the drift report's reference all predict: one model call, and for a classifier
each row's label the likeliest of its probabilities.

Reading a folder needs no MLflow: the service image carries none. A model with MLflow's
scikit-learn flavour is loaded the way `mlflow.sklearn.load_model` loads it (MLflow 3.17:
skops with the types the folder names as trusted, else cloudpickle or pickle); a model of
any other flavour goes through MLflow's pyfunc, which then has to be installed.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paved_ml.config import read_yaml_mapping
from paved_ml.errors import PavedMLError

__all__ = [
    "CHAMPION_FILE",
    "DEFAULT_DIR",
    "Champion",
    "load_champion",
    "load_model",
    "read_champion_file",
    "read_mlmodel",
    "write_champion_file",
]

#: Where a team repo keeps its champion (DVC-tracked), relative to the repo's root.
DEFAULT_DIR = Path("models/champion")
CHAMPION_FILE = "champion.json"
MLMODEL_FILE = "MLmodel"
#: MLflow's switch for loading pickled (and skops) models; on unless set to false.
ALLOW_PICKLE_ENV = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


def read_champion_file(model_dir: Path) -> dict[str, Any]:
    """What champion.json says about the model in `model_dir` (empty if it has none)."""
    path = model_dir / CHAMPION_FILE
    if not path.is_file():
        return {}
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return record


def write_champion_file(
    dest: Path, model_name: str, version: str, metrics: dict[str, float]
) -> None:
    """Record which registered version the folder holds, and its metrics."""
    record = {"model_name": model_name, "version": version, "metrics": metrics}
    (dest / CHAMPION_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    """The folder's MLmodel file, read as YAML; a PavedMLError says how to get one."""
    path = model_dir / MLMODEL_FILE
    if not path.is_file():
        raise PavedMLError(f"no champion model in {model_dir}: run `dvc pull` or `dvc repro` first")
    return read_yaml_mapping(path, holds="MLmodel flavours and signature")


@dataclass(frozen=True)
class Champion:
    """A loaded champion: its model, its registered name and version, a classifier's labels.

    `labels` (strings, in the model's `classes_` order) is set for a classifier that gives
    probabilities (scikit-learn's `predict_proba`), None for any other model.
    """

    model: Any
    model_name: str
    version: str
    labels: list[str] | None

    def predict(self, inputs: Any) -> tuple[Any, Any]:
        """Each row's prediction and, for a classifier, its probabilities (else None).

        A classifier is asked once (`predict_proba`) and each row's label is the likeliest
        of its probabilities (`paved_ml.models.likeliest`); any other model's `predict`
        answers as it is.
        """
        if self.labels is None:
            return self.model.predict(inputs), None
        from paved_ml.models import likeliest  # scikit-learn: imported by the model already

        return likeliest(self.model, inputs)


def load_champion(model_dir: Path = DEFAULT_DIR) -> Champion:
    """The champion in `model_dir`, loaded (see `load_model`), with its name and version."""
    model = load_model(model_dir)
    record = read_champion_file(model_dir)
    classes = getattr(model, "classes_", None)
    labels = (
        [str(label) for label in classes]
        if classes is not None and hasattr(model, "predict_proba")
        else None
    )
    return Champion(
        model,
        str(record.get("model_name", "unknown")),
        str(record.get("version", "unknown")),
        labels,
    )


def load_model(model_dir: Path) -> Any:
    """The model in `model_dir`.

    scikit-learn's own object for the sklearn flavour, else MLflow's pyfunc model.
    """
    flavors = read_mlmodel(model_dir).get("flavors") or {}
    sklearn = flavors.get("sklearn")
    if isinstance(sklearn, dict):
        return _load_sklearn(model_dir, sklearn)
    try:
        import mlflow.pyfunc
    except ImportError:
        raise PavedMLError(
            f"the model in {model_dir} has no sklearn flavour ({', '.join(flavors) or 'none'}):"
            " loading it needs MLflow; add mlflow-skinny to the project's dependencies"
        ) from None
    return mlflow.pyfunc.load_model(str(model_dir))


def _load_sklearn(model_dir: Path, flavor: dict[str, Any]) -> Any:
    if os.environ.get(ALLOW_PICKLE_ENV, "true").strip().lower() in {"false", "0"}:
        raise PavedMLError(
            f"{ALLOW_PICKLE_ENV} is false: the model in {model_dir} is not loaded (loading a "
            "model can run code from it; set the variable to true for models you trust)"
        )
    if flavor.get("code"):  # the model's own code, as MLflow's `code_paths` saved it
        sys.path.insert(0, str(model_dir / str(flavor["code"])))
    path = model_dir / str(flavor.get("pickled_model", "model.pkl"))
    kind = str(flavor.get("serialization_format", "pickle"))
    if kind == "skops":
        import skops.io

        return skops.io.load(path, trusted=flavor.get("skops_trusted_types"))
    if kind == "cloudpickle":
        import cloudpickle

        with path.open("rb") as handle:
            return cloudpickle.load(handle)
    if kind == "pickle":
        import pickle

        with path.open("rb") as handle:
            return pickle.load(handle)
    raise PavedMLError(f"{path}: unknown serialization format {kind!r}")
