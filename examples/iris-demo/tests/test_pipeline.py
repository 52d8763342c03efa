"""Tests of the pipeline's own logic; they run offline in seconds (`uv run pytest`)."""

from pathlib import Path

import pytest
from paved_ml.data import Schema
from paved_ml.errors import SchemaError

from iris_demo.pipeline.ingest import load
from iris_demo.pipeline.prepare import split
from iris_demo.pipeline.train import build_model

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = Schema.from_yaml(ROOT / "data" / "schema.yaml")
TRAIN_PARAMS = {"C": 1.0, "max_iter": 500, "seed": 0}


def test_ingested_table_matches_the_schema() -> None:
    assert SCHEMA.problems(load("iris")) == []


def test_schema_names_the_bad_column_and_rows() -> None:
    frame = load("iris")
    frame.loc[[3, 7], "petal_width_cm"] = -1.0
    with pytest.raises(SchemaError, match=r"petal_width_cm.*rows 3, 7"):
        SCHEMA.validate(frame)


def test_split_is_stratified_and_disjoint() -> None:
    train, test = split(load("iris"), SCHEMA, test_size=0.2, seed=0)
    assert len(train) + len(test) == 150
    assert set(train.index).isdisjoint(test.index)
    assert test[SCHEMA.target].value_counts().tolist() == [10, 10, 10]


def test_model_learns_the_training_data() -> None:
    train, test = split(load("iris"), SCHEMA, test_size=0.2, seed=0)
    model = build_model(TRAIN_PARAMS).fit(train[SCHEMA.features], train[SCHEMA.target])
    assert model.score(test[SCHEMA.features], test[SCHEMA.target]) > 0.85
