"""paved_ml.feedback and `paved-ml feedback`: accuracy from labels joined with the log by id."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from paved_ml.cli import main
from paved_ml.config import load_config
from paved_ml.errors import PavedMLError
from paved_ml.feedback import FeedbackSettings, judge_feedback, read_labels
from paved_ml.prediction_log import LogSettings, PredictionLog, read_prediction_log

pytestmark = pytest.mark.libs

LABELS = np.array(["setosa", "versicolor", "virginica"])


def served_log(folder: Path, days: int = 3, per_day: int = 60) -> pd.DataFrame:
    """A prediction log as the service writes it, `per_day` predictions on each of `days` days."""
    log = PredictionLog(LogSettings(folder=folder), model_name="iris", model_version="4")
    rng = np.random.default_rng(0)
    for day in range(days):
        predicted = LABELS[rng.integers(0, 3, per_day)]
        ids = [f"{day:032x}-{row}" for row in range(per_day)]
        log.record({"sl": rng.normal(5, 1, per_day)}, list(predicted), ids)
        log.flush()
    log.close()
    frame = read_prediction_log(folder)
    # Spread the requests over the days (the log stamps them now).
    day_of = frame["prediction_id"].str.slice(0, 32).map(lambda hex_: int(hex_, 16))
    frame["timestamp"] = pd.Timestamp("2026-11-01", tz="UTC") + pd.to_timedelta(day_of, "D")
    return frame


def labels_for(log: pd.DataFrame, *, wrong_share: float = 0.0, seed: int = 1) -> pd.DataFrame:
    """The true labels of the log's predictions: right, except `wrong_share` of the last day's."""
    truth = log["prediction"].to_numpy().copy()
    last = log["timestamp"] == log["timestamp"].max()
    rng = np.random.default_rng(seed)
    flip = last.to_numpy() & (rng.random(len(log)) < wrong_share)
    truth[flip] = [LABELS[(list(LABELS).index(x) + 1) % 3] for x in truth[flip]]
    return pd.DataFrame({"prediction_id": log["prediction_id"], "species": truth})


def test_planted_label_noise_fails_the_latest_window_and_correct_labels_pass(
    tmp_path: Path,
) -> None:
    log = served_log(tmp_path / "log")
    settings = FeedbackSettings.from_params({"min_f1_macro": 0.85, "min_accuracy": 0.8})
    right = judge_feedback(log, labels_for(log), label_column="species", settings=settings)
    assert not right.failed and right.below == []
    assert [window["rows"] for window in right.windows] == [60, 60, 60]
    assert right.latest["metrics"]["f1_macro"] == 1.0

    noisy = judge_feedback(
        log, labels_for(log, wrong_share=0.4), label_column="species", settings=settings
    )
    assert noisy.failed
    assert {found["metric"] for found in noisy.below} == {"f1_macro", "accuracy"}
    assert noisy.latest["metrics"]["accuracy"] < 0.8
    assert [w["metrics"]["accuracy"] for w in noisy.windows[:2]] == [1.0, 1.0], "by window"


def test_labels_that_match_nothing_are_counted_never_dropped(tmp_path: Path) -> None:
    log = served_log(tmp_path / "log", days=1)
    labels = labels_for(log).iloc[:50]
    strays = pd.DataFrame({"prediction_id": ["nope-0", "nope-1"], "species": ["setosa"] * 2})
    relabel = labels.iloc[:3].assign(species="virginica")
    given = pd.concat([labels, strays, relabel], ignore_index=True)
    summary = tmp_path / "feedback.json"
    result = judge_feedback(
        log, given, label_column="species", settings=FeedbackSettings(), summary=summary
    )
    assert (result.labels, result.matched, result.unmatched) == (55, 50, 2)
    assert result.relabelled == 3 and result.unlabelled == 10
    recorded = json.loads(summary.read_text())
    assert recorded["unmatched"] == 2 and recorded["latest"]["rows"] == 50


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"min_auc": 0.9}, "monitoring.min_auc: 'auc' is not a metric paved-ml computes"),
        ({"feedback_window": "a week"}, "monitoring.feedback_window='a week': not a fixed"),
        ({"min_labels": 0}, "monitoring.min_labels=0: must be at least 1"),
        ({"min_accuracy": "high"}, "monitoring.min_accuracy='high': give a number"),
    ],
)
def test_settings_that_are_wrong_are_refused_naming_the_key(
    section: dict[str, object], message: str
) -> None:
    with pytest.raises(PavedMLError, match=message.replace("(", r"\(")):
        FeedbackSettings.from_params({"drift_share": 0.5, "min_rows": 50, **section})


def test_nothing_to_judge_says_why(tmp_path: Path) -> None:
    log = served_log(tmp_path / "log", days=1)
    labels = labels_for(log)
    settings = FeedbackSettings()
    with pytest.raises(PavedMLError, match="the labels have no column 'species'"):
        judge_feedback(
            log, labels.rename(columns={"species": "y"}), label_column="species", settings=settings
        )
    with pytest.raises(PavedMLError, match="the prediction log has no prediction ids"):
        judge_feedback(
            log.assign(prediction_id=None), labels, label_column="species", settings=settings
        )
    with pytest.raises(PavedMLError, match="none of the 60 labels matches a logged prediction"):
        judge_feedback(
            log,
            labels.assign(prediction_id="x" + labels["prediction_id"]),
            label_column="species",
            settings=settings,
        )
    with pytest.raises(
        PavedMLError, match=r"holds 10 labelled predictions, fewer than monitoring\.min_labels"
    ):
        judge_feedback(log, labels.iloc[:10], label_column="species", settings=settings)
    with pytest.raises(PavedMLError, match="no labels at"):
        read_labels(tmp_path / "missing.csv")


def test_paved_ml_feedback_exits_by_the_verdict_and_logs_it_to_mlflow(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_folder = project / "logs" / "predictions"
    log = served_log(log_folder, days=1)
    (project / "params.yaml").write_text("monitoring:\n  min_f1_macro: 0.85\n  min_labels: 20\n")
    labels = project / "labels.parquet"
    labels_for(log).assign(species=lambda f: f["species"]).to_parquet(labels)
    common = ["--log", str(log_folder), "--label-column", "species"]
    assert main(["feedback", str(labels), *common]) == 0
    out = capsys.readouterr().out
    assert "accuracy holds: 60 of 60 labels joined with a logged prediction" in out
    noisy = project / "noisy.csv"
    labels_for(log, wrong_share=0.5).to_csv(noisy, index=False)
    assert main(["feedback", str(noisy), *common]) == 1
    out = capsys.readouterr().out
    assert "BELOW  f1_macro:" in out and "under monitoring.min_f1_macro (0.85)" in out
    assert "accuracy below a threshold" in out
    client = MlflowClient(load_config().tracking_uri)
    experiment = client.get_experiment_by_name("lib-test")
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.`paved.monitoring.kind` = 'accuracy'",
        order_by=["attributes.start_time DESC"],
    )
    assert [run.data.tags["paved.monitoring.failed"] for run in runs] == ["true", "false"]
    assert runs[0].data.tags["paved.monitoring.model_version"] == "4"
    assert (
        runs[0].data.metrics["accuracy.f1_macro"]
        < 0.85
        <= runs[1].data.metrics["accuracy.f1_macro"]
    )
    assert main(["feedback", str(project / "nothing.csv"), *common]) == 2
    assert "paved-ml feedback: no labels at" in capsys.readouterr().err
