"""Prepare: validate the raw table against the data contract, then split train/test."""

import sys

import pandas as pd
from paved_ml.contract import Contract
from paved_ml.errors import SchemaError
from sklearn.model_selection import train_test_split

from ..contract import CONTRACT
from ._common import RAW, TEST, TRAIN, params


def split(
    frame: pd.DataFrame, contract: Contract, *, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate `frame` and split it, stratified on the target."""
    clean = contract.validate(frame)
    train, test = train_test_split(
        clean, test_size=test_size, random_state=seed, stratify=clean[contract.target]
    )
    return train, test


def main() -> None:
    settings = params("prepare")
    try:
        train, test = split(
            pd.read_csv(RAW), CONTRACT, test_size=settings["test_size"], seed=settings["seed"]
        )
    except SchemaError as exc:
        sys.exit(f"prepare: {RAW} rejected. {exc}")
    TRAIN.parent.mkdir(parents=True, exist_ok=True)
    train.to_csv(TRAIN, index=False)
    test.to_csv(TEST, index=False)
    print(f"prepare: {len(train)} train rows, {len(test)} test rows")


if __name__ == "__main__":
    main()
