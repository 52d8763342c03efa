"""Evaluate: score the challenger, and promote it to champion only if it is better."""

import json
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
from paved_ml.config import load_config
from paved_ml.contract import Contract
from paved_ml.registry import export_champion, promote_if_better, save_champion
from paved_ml.tracking import lineage_run
from sklearn.metrics import accuracy_score, f1_score

from ..contract import CONTRACT
from ._common import CANDIDATE, CHAMPION, METRICS, REGISTRATION, TEST, params


def score(model: Any, frame: pd.DataFrame, contract: Contract) -> dict[str, float]:
    """The metrics a challenger is judged on."""
    predicted = model.predict(frame[contract.features])
    truth = frame[contract.target]
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "f1_macro": float(f1_score(truth, predicted, average="macro")),
    }


def main() -> None:
    settings = params("evaluate")
    config = load_config()
    registration = json.loads(REGISTRATION.read_text(encoding="utf-8"))
    metrics = score(mlflow.sklearn.load_model(str(CANDIDATE)), pd.read_csv(TEST), CONTRACT)
    if settings["metric"] not in metrics:
        raise SystemExit(f"evaluate: metric {settings['metric']!r} is not one of {sorted(metrics)}")

    with lineage_run(config, run_id=registration["run_id"]):
        mlflow.log_metrics(metrics)
    decision = promote_if_better(
        config,
        registration["version"],
        metric=settings["metric"],
        value=metrics[settings["metric"]],
        greater_is_better=settings["greater_is_better"],
    )
    if decision.promoted:
        save_champion(CANDIDATE, CHAMPION, decision)
    elif decision.champion_version is None:
        raise SystemExit(f"evaluate: no champion to serve: {decision.message}")
    elif not (CHAMPION / "MLmodel").is_file():
        export_champion(config, CHAMPION)
    METRICS.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(f"evaluate: {decision.message}")


if __name__ == "__main__":
    main()
