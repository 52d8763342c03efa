"""Evaluate: score the challenger, and promote it to champion only if it is better.

The gate is fair: the champion is scored on this run's test set too, and the challenger
must beat that score, not the one the champion got on its own test set when it was
trained. The decision (both scores, the test set's md5) is logged on the challenger's run.
"""

import json
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
from paved_ml.config import load_config
from paved_ml.contract import Contract
from paved_ml.data import file_md5
from paved_ml.registry import (
    SameTestSet,
    decision_record,
    export_champion,
    promote_if_better,
    save_champion,
)
from paved_ml.tracking import lineage_run
from sklearn.metrics import accuracy_score, f1_score

from ..contract import CONTRACT
from ._common import CANDIDATE, CHAMPION, GATE, METRICS, REGISTRATION, TEST, params


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
    test = pd.read_csv(TEST)
    metric = settings["metric"]
    metrics = score(mlflow.sklearn.load_model(str(CANDIDATE)), test, CONTRACT)
    if metric not in metrics:
        raise SystemExit(f"evaluate: metric {metric!r} is not one of {sorted(metrics)}")

    with lineage_run(config, run_id=registration["run_id"]):
        mlflow.log_metrics(metrics)
    scored: dict[str, dict[str, float]] = {}  # each model scored on this test set, by URI

    def on_this_test_set(uri: str) -> float:
        scored[uri] = score(mlflow.sklearn.load_model(uri), test, CONTRACT)
        return scored[uri][metric]

    decision = promote_if_better(
        config,
        registration["version"],
        metric=metric,
        value=metrics[metric],
        greater_is_better=settings["greater_is_better"],
        # The champion, loaded from the registry, scored on this same test set.
        same_test_set=SameTestSet(md5=file_md5(TEST), score=on_this_test_set),
    )
    if decision.promoted:
        save_champion(CANDIDATE, CHAMPION, decision)
    elif decision.champion_version is None:
        raise SystemExit(f"evaluate: no champion to serve: {decision.message}")
    elif not (CHAMPION / "MLmodel").is_file():
        export_champion(config, CHAMPION)
    METRICS.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    # The decision, and both models' metrics on this test set (retraining's pull request).
    champion = scored.get(f"models:/{decision.model_name}/{decision.champion_version}")
    record = {**decision_record(decision), "metrics": metrics, "champion_metrics": champion}
    GATE.parent.mkdir(parents=True, exist_ok=True)
    GATE.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"evaluate: {decision.message}")


if __name__ == "__main__":
    main()
