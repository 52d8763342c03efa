"""Drift: what the service was asked and answered, against the training reference, by Evidently.

`detect_drift` compares the recorded inputs and predictions (the prediction log) with the
reference (the training table, and the champion's predictions on it) column by column with
Evidently's data drift preset: each column is tested with the method Evidently picks for
its type and size, at `threshold`; the data has drifted when the share of drifted columns
reaches `drift_share`. It writes Evidently's HTML report and a JSON summary that names the
drifted columns. The thresholds come from the `monitoring` section of params.yaml.

This module never imports the service; Evidently is imported only when a check runs (it
is the `monitoring` extra of paved-ml).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paved_ml.contract import Contract
from paved_ml.errors import PavedMLError
from paved_ml.prediction_log import PREDICTION

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DriftResult", "DriftSettings", "detect_drift"]


@dataclass(frozen=True, kw_only=True)
class DriftSettings:
    """When drift fails the check (params.yaml, section `monitoring`)."""

    #: The share of columns (inputs and prediction) that may drift before the check fails.
    drift_share: float = 0.5
    #: Per column: the p-value (or distance) at which Evidently calls the column drifted.
    threshold: float = 0.05
    #: Fewer recorded rows than this and the check refuses to judge.
    min_rows: int = 50

    def __post_init__(self) -> None:
        if not 0 < self.drift_share <= 1:
            raise PavedMLError(f"monitoring.drift_share={self.drift_share}: give a share in (0, 1]")
        if not 0 < self.threshold < 1:
            raise PavedMLError(f"monitoring.threshold={self.threshold}: give a value in (0, 1)")
        if self.min_rows < 1:
            raise PavedMLError(f"monitoring.min_rows={self.min_rows}: must be at least 1")

    @classmethod
    def from_params(cls, section: Mapping[str, Any] | None) -> DriftSettings:
        """The settings from params.yaml's `monitoring` section (missing keys: defaults)."""
        known = {"drift_share", "threshold", "min_rows"}
        chosen = {key: value for key, value in (section or {}).items() if key in known}
        try:
            return cls(**chosen)
        except TypeError as exc:
            raise PavedMLError(f"params.yaml monitoring: {exc}") from exc


@dataclass
class DriftResult:
    """The outcome: which columns drifted, by how much, and whether that fails the check."""

    drifted: bool
    drifted_columns: list[str]
    share: float
    settings: DriftSettings
    rows: dict[str, int]
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Logged rows the data contract refuses, per input column (with a contract).
    violations: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return asdict(self)


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    settings: DriftSettings,
    contract: Contract | None = None,
    features: Sequence[str] | None = None,
    report: Path | None = None,
    summary: Path | None = None,
) -> DriftResult:
    """Compare `current` with `reference` on the input columns and the prediction column.

    The input columns are the `contract`'s (which also counts the logged rows it refuses),
    or `features`. Both frames hold them and `prediction`. Writes the HTML `report` and
    the JSON `summary` when given (their folders are made). Too few rows, or a column
    missing from either frame, is a PavedMLError that says which.
    """
    if contract is not None:
        features = contract.features
    if not features:
        raise PavedMLError("name the input columns: a contract, or features")
    columns = [*features, PREDICTION]
    for name, frame in (("the reference", reference), ("the prediction log", current)):
        missing = [column for column in columns if column not in frame]
        if missing:
            raise PavedMLError(f"{name} has no column {', '.join(map(repr, missing))}")
    if len(current) < settings.min_rows:
        raise PavedMLError(
            f"the prediction log holds {len(current)} rows, fewer than monitoring.min_rows "
            f"({settings.min_rows}): too few to judge drift"
        )
    snapshot = _run_evidently(reference[columns], current[columns], features, settings)
    per_column: dict[str, dict[str, Any]] = {}
    found = snapshot.dict()
    values = {metric.get("id"): metric.get("value") for metric in found.get("metrics", [])}
    for test in found.get("tests", []):
        config = test.get("metric_config", {})
        params = config.get("params", {})
        if params.get("type", "").endswith(":ValueDrift") and params.get("column") in columns:
            value = values.get(config.get("metric_id"))
            per_column[params["column"]] = {
                "drifted": test.get("status") == "FAIL",
                "method": params.get("method"),
                "threshold": params.get("threshold"),
                "value": float(value) if isinstance(value, int | float) else None,
                "detail": test.get("description", ""),
            }
    missing = [column for column in columns if column not in per_column]
    if missing:
        raise PavedMLError(f"Evidently reported nothing for {', '.join(missing)}")
    drifted = [column for column in columns if per_column[column]["drifted"]]
    share = len(drifted) / len(columns)
    result = DriftResult(
        drifted=share >= settings.drift_share,
        drifted_columns=drifted,
        share=round(share, 4),
        settings=settings,
        rows={"reference": len(reference), "current": len(current)},
        columns=per_column,
        violations=contract.violations(current) if contract is not None else {},
    )
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(report))
    if summary is not None:
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
    return result


def _run_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str], settings: DriftSettings
) -> Any:
    try:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    except ImportError as exc:
        raise PavedMLError(
            f"the drift report needs Evidently ({exc}): install paved-ml's `monitoring` extra "
            "(in a team repo: `uv sync --group monitoring`)"
        ) from exc

    numeric = [name for name in features if reference[name].dtype.kind in "iuf"]
    categorical = [name for name in features if name not in numeric]
    prediction_numeric = reference[PREDICTION].dtype.kind == "f"
    definition = DataDefinition(
        numerical_columns=numeric + ([PREDICTION] if prediction_numeric else []),
        categorical_columns=categorical + ([] if prediction_numeric else [PREDICTION]),
    )
    preset = DataDriftPreset(
        columns=[*features, PREDICTION],
        drift_share=settings.drift_share,
        threshold=settings.threshold,
    )
    return Report([preset], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
