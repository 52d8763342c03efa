"""paved_ml.drift and `paved-ml drift`: the prediction log against the training data."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from paved_ml.cli import main
from paved_ml.config import load_config
from paved_ml.drift import DriftSettings, detect_drift
from paved_ml.errors import PavedMLError
from paved_ml.prediction_log import LogSettings, PredictionLog

from tests.lib.helpers import fit

pytestmark = pytest.mark.libs

FEATURES = ["sl", "sw", "pl", "pw"]


def sample(iris: pd.DataFrame, rows: int, *, seed: int, shift: dict[str, float]) -> pd.DataFrame:
    """`rows` iris rows drawn with replacement, a little noise, some features moved."""
    rng = np.random.default_rng(seed)
    drawn = iris.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    for name in FEATURES:
        drawn[name] = drawn[name] + rng.normal(0, 0.05, rows) + shift.get(name, 0.0)
    return drawn


def monitored_team(root: Path, iris: pd.DataFrame, params: str) -> tuple[Path, object]:
    """A team repo's monitoring inputs at `root` (params, training table, champion); the
    champion too, to log predictions with."""
    (root / "data" / "prepared").mkdir(parents=True)
    iris.to_csv(root / "data" / "prepared" / "train.csv", index=False)
    (root / "params.yaml").write_text(params)
    model = fit(iris, 1.0)
    signature = infer_signature(iris[FEATURES], model.predict(iris[FEATURES]))
    mlflow.sklearn.save_model(model, root / "models" / "champion", signature=signature)
    return root, model


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, iris: pd.DataFrame) -> Path:
    """A team repo's monitoring inputs: params, schema, training table and champion."""
    params = "monitoring:\n  drift_share: 0.4\n  threshold: 0.05\n"
    return monitored_team(tmp_path_factory.mktemp("drift"), iris, params)[0]


def logged(folder: Path, frame: pd.DataFrame, model: object) -> Path:
    """The prediction log a service would have written for `frame`'s requests."""
    log = PredictionLog(LogSettings(folder=folder), model_name="iris", model_version="3")
    predictions = model.predict(frame[FEATURES])  # type: ignore[attr-defined]
    for start in range(0, len(frame), 10):
        part = frame.iloc[start : start + 10]
        log.record(
            {name: part[name].to_numpy() for name in FEATURES}, predictions[start : start + 10]
        )
    log.close()
    return folder


def run_cli(
    team: Path, log: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str, str]:
    reports = log.parent / f"{log.name}-reports"
    code = main(
        [
            "drift",
            "--params", str(team / "params.yaml"),
            "--reference", str(team / "data" / "prepared" / "train.csv"),
            "--contract", "tests.lib.iris_contract:CONTRACT",
            "--model", str(team / "models" / "champion"),
            "--log", str(log),
            "--report", str(reports / "drift.html"),
            "--summary", str(reports / "drift.json"),
            *extra,
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


def test_a_shifted_log_fails_naming_the_drifted_features_with_a_report(
    team: Path,
    iris: pd.DataFrame,
    tmp_path: Path,
    project: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = mlflow.sklearn.load_model(str(team / "models" / "champion"))
    shifted = sample(iris, 400, seed=1, shift={"pl": 2.0, "pw": 1.0})
    code, out, err = run_cli(team, logged(tmp_path / "log", shifted, model), capsys)
    assert code == 1, (out, err)
    summary = json.loads((tmp_path / "log-reports" / "drift.json").read_text())
    assert summary["drifted"] is True
    assert {"pl", "pw"} <= set(summary["drifted_columns"])
    assert not {"sl", "sw"} & set(summary["drifted_columns"])
    assert summary["violations"] == {}  # shifted, but still inside the contract's ranges
    # Each column's statistic, threshold and value: the alert's table.
    pl = summary["columns"]["pl"]
    assert pl["method"] and pl["threshold"] == 0.05 and 0 <= pl["value"] < 0.05
    assert "DRIFTED  pl" in out and "DRIFTED  pw" in out
    assert out.rstrip().splitlines()[-2].startswith("drift:")
    # The result is a run of the project's experiment, for a platform view to read.
    assert "logged to MLflow: run " in out.rstrip().splitlines()[-1]
    client = MlflowClient(load_config().tracking_uri)
    [run] = client.search_runs(
        [client.get_experiment_by_name("lib-test").experiment_id],
        "tags.`paved.monitoring.kind` = 'drift'",
    )
    assert run.data.tags["paved.monitoring.failed"] == "true"
    assert run.data.tags["paved.monitoring.model_version"] == "3"
    assert run.data.metrics["drift.share"] == summary["share"]
    assert run.data.metrics["drift.columns_drifted"] == len(summary["drifted_columns"])
    html = (tmp_path / "log-reports" / "drift.html").read_text()
    assert "<html" in html.lower() and len(html) > 10_000  # Evidently's own report


def test_an_unshifted_log_passes(
    team: Path, iris: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = mlflow.sklearn.load_model(str(team / "models" / "champion"))
    same = sample(iris, 400, seed=2, shift={})
    code, out, err = run_cli(team, logged(tmp_path / "log", same, model), capsys, "--no-tracking")
    assert code == 0, (out, err)
    summary = json.loads((tmp_path / "log-reports" / "drift.json").read_text())
    assert summary["drifted"] is False and summary["share"] < 0.4
    assert out.rstrip().splitlines()[-1].startswith("no drift:")
    assert "MLflow" not in out + err  # --no-tracking


def test_a_missing_or_empty_log_is_a_clear_message_not_a_traceback(
    team: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(team, tmp_path / "nowhere", capsys)
    assert code == 2 and "Traceback" not in err
    assert err.startswith("paved-ml drift: no prediction log at") and "PAVED_PREDICTION_LOG" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(team, tmp_path / "empty", capsys)
    assert code == 2 and "is empty: no requests recorded yet" in err and "Traceback" not in err


def test_log_rows_the_contract_refuses_are_counted(
    team: Path, iris: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = mlflow.sklearn.load_model(str(team / "models" / "champion"))
    wild = sample(iris, 200, seed=4, shift={"pl": 30.0})  # past the contract's 30 cm
    code, out, _ = run_cli(team, logged(tmp_path / "log", wild, model), capsys)
    assert code == 1
    assert json.loads((tmp_path / "log-reports" / "drift.json").read_text())["violations"] == {
        "pl": 200
    }
    assert "REFUSED  pl: 200 logged rows break the data contract" in out


def test_too_few_rows_or_a_missing_column_is_refused_not_judged(iris: pd.DataFrame) -> None:
    reference = iris.assign(prediction=iris.species)
    with pytest.raises(PavedMLError, match=r"holds 10 rows, fewer than monitoring\.min_rows"):
        detect_drift(reference, reference.head(10), features=FEATURES, settings=DriftSettings())
    with pytest.raises(PavedMLError, match="the prediction log has no column 'pw'"):
        detect_drift(
            reference, reference.drop(columns="pw"), features=FEATURES, settings=DriftSettings()
        )
    with pytest.raises(PavedMLError, match=r"monitoring\.drift_share=2"):
        DriftSettings.from_params({"drift_share": 2})
