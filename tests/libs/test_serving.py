"""paved_ml.serving: the request model, the predictor, and a real BentoML service."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow.sklearn
import pandas as pd
import pytest
from golden_path import Service, serve
from helpers import fit
from mlflow.models import infer_signature
from paved_ml.errors import PavedMLError
from paved_ml.serving import MODEL_DIR_ENV, ChampionModel
from pydantic import ValidationError

pytestmark = pytest.mark.libs

ROW = {"sl": 6.3, "sw": 3.3, "pl": 6.0, "pw": 2.5}


@pytest.fixture(scope="module")
def champion_dir(tmp_path_factory: pytest.TempPathFactory, iris: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("serving") / "champion"
    features = iris[["sl", "sw", "pl", "pw"]]
    model = fit(iris, 1.0)
    mlflow.sklearn.save_model(
        model, path, signature=infer_signature(features, model.predict(features))
    )
    (path / "champion.json").write_text(json.dumps({"model_name": "iris", "version": "7"}))
    return path


def test_row_model_is_strict(champion_dir: Path) -> None:
    row = ChampionModel(champion_dir).row_model
    assert list(row.model_fields) == ["sl", "sw", "pl", "pw"]
    assert row(**ROW).model_dump() == ROW
    for bad in (
        {**ROW, "sl": "6.3"},
        {**ROW, "extra": 1},
        {"sl": 1.0},
        {**ROW, "pw": float("nan")},
    ):
        with pytest.raises(ValidationError):
            row(**bad)


def test_predictor_predicts_and_names_the_model(champion_dir: Path) -> None:
    champion = ChampionModel(champion_dir)
    predictor = champion.load()
    rows = [champion.row_model(**ROW), champion.row_model(sl=5.0, sw=3.4, pl=1.5, pw=0.2)]
    result = predictor.predict(rows)
    assert result.predictions == [2, 0]
    assert (result.model_name, result.model_version) == ("iris", "7")


def test_missing_champion_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(PavedMLError, match="run `dvc pull` or `dvc repro` first"):
        ChampionModel.from_env().row_model  # noqa: B018


SERVICE = """
from typing import Annotated

import bentoml
from paved_ml.serving import MAX_ROWS, ChampionModel, Prediction
from pydantic import Field

CHAMPION = ChampionModel.from_env()
Row = CHAMPION.row_model


@bentoml.service(name="lib-test")
class LibTest:
    def __init__(self) -> None:
        self.predictor = CHAMPION.load()

    @bentoml.api
    def predict(
        self, rows: Annotated[list[Row], Field(min_length=1, max_length=MAX_ROWS)]
    ) -> Prediction:
        return self.predictor.predict(rows)
"""


@pytest.fixture(scope="module")
def service(champion_dir: Path) -> Iterator[Service]:
    folder = champion_dir.parent / "svc"
    folder.mkdir()
    (folder / "lib_service.py").write_text(SERVICE)
    env = {**__import__("os").environ, MODEL_DIR_ENV: str(champion_dir)}
    with serve(
        folder, env, command=(sys.executable, "-m", "bentoml", "serve", "lib_service:LibTest")
    ) as svc:
        yield svc


def test_bentoml_service_serves_and_rejects(service: Service) -> None:
    assert service.post("/predict", {"rows": [ROW]}) == (
        200,
        {"predictions": [2], "model_name": "iris", "model_version": "7"},
    )
    status, body = service.post("/predict", {"rows": [{**ROW, "sl": "x"}]})
    assert status == 400 and body["detail"][0]["loc"] == ["rows", 0, "sl"]
    status, body = service.post("/predict", {"rows": [ROW] * 1001})
    assert status == 400 and body["detail"][0]["loc"] == ["rows"]
