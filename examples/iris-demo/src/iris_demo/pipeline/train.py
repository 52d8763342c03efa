"""Train: fit the model, track the run with its lineage, register it as a challenger."""

import json
import shutil
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from paved_ml.config import load_config
from paved_ml.registry import register
from paved_ml.tracking import lineage_run, pinned_requirements
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ..contract import CONTRACT
from ._common import CANDIDATE, REGISTRATION, TRAIN, params

#: The model is saved with skops, which loads only the types it is told to trust
#: (scikit-learn's own are trusted already).
TRUSTED_TYPES: list[str] = []
REQUIREMENTS = ("mlflow", "scikit-learn", "skops", "pandas", "numpy")


def build_model(settings: dict[str, Any]) -> Pipeline:
    """The estimator; its settings come from the `train` section of params.yaml."""
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(
            C=settings["C"], max_iter=settings["max_iter"], random_state=settings["seed"]
        ),
    )


def main() -> None:
    settings = params("train")
    config = load_config()
    frame = pd.read_csv(TRAIN)
    features, target = frame[CONTRACT.features], frame[CONTRACT.target]
    model = build_model(settings).fit(features, target)
    signature = infer_signature(features, model.predict(features))
    requirements = pinned_requirements(*REQUIREMENTS)

    with lineage_run(config, run_name="train", inputs=[TRAIN]) as run:
        mlflow.log_params(settings)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            pip_requirements=requirements,
            skops_trusted_types=TRUSTED_TYPES or None,
        )
        version = register(config, info.model_uri, tags={"paved.run_id": run.info.run_id})

    if CANDIDATE.exists():
        shutil.rmtree(CANDIDATE)
    mlflow.sklearn.save_model(
        model,
        CANDIDATE,
        signature=signature,
        pip_requirements=requirements,
        skops_trusted_types=TRUSTED_TYPES or None,
    )
    record = {"model_name": config.model_name, "version": version, "run_id": run.info.run_id}
    REGISTRATION.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"train: registered {config.model_name} v{version} (run {run.info.run_id})")


if __name__ == "__main__":
    main()
