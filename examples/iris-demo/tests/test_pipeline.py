"""Tests of the pipeline's own logic; they run offline in seconds (`uv run pytest`)."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from paved_ml.contract import ContractError

from iris_demo.contract import CONTRACT
from iris_demo.pipeline.ingest import load
from iris_demo.pipeline.prepare import split
from iris_demo.pipeline.train import build_model

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PARAMS: dict[str, Any] = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]


def test_ingested_table_keeps_the_contract() -> None:
    assert len(CONTRACT.validate(load("iris"))) == 150


def test_the_contract_names_the_bad_column_and_rows() -> None:
    frame = load("iris")
    frame.loc[[3, 7], "petal_width_cm"] = -1.0
    with pytest.raises(ContractError, match=r"petal_width_cm.*rows 3, 7"):
        CONTRACT.validate(frame)


def test_split_is_stratified_and_disjoint() -> None:
    train, test = split(load("iris"), CONTRACT, test_size=0.2, seed=0)
    assert len(train) + len(test) == 150
    assert set(train.index).isdisjoint(test.index)
    assert test[CONTRACT.target].value_counts().tolist() == [10, 10, 10]


def test_model_learns_the_training_data() -> None:
    train, test = split(load("iris"), CONTRACT, test_size=0.2, seed=0)
    model = build_model(TRAIN_PARAMS).fit(train[CONTRACT.features], train[CONTRACT.target])
    assert model.score(test[CONTRACT.features], test[CONTRACT.target]) > 0.85
    assert set(model.predict(test[CONTRACT.features])) <= {"setosa", "versicolor", "virginica"}
