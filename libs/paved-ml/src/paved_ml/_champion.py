"""The champion folder's record (champion.json): plain JSON, no MLflow import needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHAMPION_FILE = "champion.json"


def read_champion_file(model_dir: Path) -> dict[str, Any]:
    """What champion.json says about the model in `model_dir` (empty if it has none)."""
    path = model_dir / CHAMPION_FILE
    if not path.is_file():
        return {}
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return record


def write_champion_file(
    dest: Path, model_name: str, version: str, metrics: dict[str, float]
) -> None:
    """Record which registered version the folder holds, and its metrics."""
    record = {"model_name": model_name, "version": version, "metrics": metrics}
    (dest / CHAMPION_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
