"""Prepare: validate the raw table against data/schema.yaml, then split train/test."""

import sys

import pandas as pd
from paved_ml.data import Schema
from paved_ml.errors import SchemaError
from sklearn.model_selection import train_test_split

from ._common import RAW, SCHEMA, TEST, TRAIN, params


def split(
    frame: pd.DataFrame, schema: Schema, *, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate `frame` and split it, stratified on the target."""
    clean = schema.validate(frame)
    train, test = train_test_split(
        clean, test_size=test_size, random_state=seed, stratify=clean[schema.target]
    )
    return train, test


def main() -> None:
    settings = params("prepare")
    schema = Schema.from_yaml(SCHEMA)
    try:
        train, test = split(
            pd.read_csv(RAW), schema, test_size=settings["test_size"], seed=settings["seed"]
        )
    except SchemaError as exc:
        sys.exit(f"prepare: {RAW} rejected. {exc}")
    TRAIN.parent.mkdir(parents=True, exist_ok=True)
    train.to_csv(TRAIN, index=False)
    test.to_csv(TEST, index=False)
    print(f"prepare: {len(train)} train rows, {len(test)} test rows")


if __name__ == "__main__":
    main()
