"""Paths and parameters shared by the stages. Stages run from the repo root (dvc repro)."""

from pathlib import Path
from typing import Any

import yaml

RAW = Path("data/raw/table.csv")
TRAIN = Path("data/prepared/train.csv")
TEST = Path("data/prepared/test.csv")
CANDIDATE = Path("models/candidate")
CHAMPION = Path("models/champion")
REGISTRATION = CANDIDATE / "registration.json"
METRICS = Path("metrics.json")
#: The champion gate's decision, with both models' metrics on the test set (not tracked).
GATE = Path("reports/gate.json")


def params(stage: str) -> dict[str, Any]:
    """This stage's section of params.yaml."""
    with open("params.yaml", encoding="utf-8") as handle:
        return dict(yaml.safe_load(handle)[stage])
