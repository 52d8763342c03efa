"""`paved-ml`: the team repo's monitoring commands, run from the repo root.

    paved-ml drift      the prediction log against the training reference (exit 1 on drift)

Exit codes: 0 no drift, 1 drift past the thresholds in params.yaml, 2 nothing to judge or a
setting that is wrong (the message says which); never a traceback for those.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from paved_ml.errors import PavedMLError
from paved_ml.prediction_log import LOG_ENV, PREDICTION, TIME

__all__ = ["main"]

DEFAULT_LOG = Path("logs/predictions")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = argparse.ArgumentParser(prog="paved-ml", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    drift = commands.add_parser("drift", help="compare the prediction log with the training data")
    drift.add_argument("--params", type=Path, default=Path("params.yaml"))
    drift.add_argument("--reference", type=Path, default=Path("data/prepared/train.csv"))
    drift.add_argument("--schema", type=Path, default=Path("data/schema.yaml"))
    drift.add_argument("--model", type=Path, default=Path("models/champion"))
    drift.add_argument(
        "--log",
        default=None,
        help=f"the prediction log, a folder or fsspec URL (default ${LOG_ENV} or {DEFAULT_LOG})",
    )
    drift.add_argument("--since-hours", type=float, default=None, help="only rows this recent")
    drift.add_argument("--report", type=Path, default=Path("reports/drift.html"))
    drift.add_argument("--summary", type=Path, default=Path("reports/drift.json"))
    args = parser.parse_args(argv)
    try:
        return _drift(args)
    except PavedMLError as exc:
        print(f"paved-ml {args.command}: {exc}", file=sys.stderr)
        return 2


def _drift(args: argparse.Namespace) -> int:
    import pandas as pd

    from paved_ml.data import Schema
    from paved_ml.drift import DriftSettings, check_drift
    from paved_ml.prediction_log import read_prediction_log

    params = _read_params(args.params)
    settings = DriftSettings.from_params(params.get("monitoring"))
    log = args.log or os.environ.get(LOG_ENV) or str(DEFAULT_LOG)
    current = read_prediction_log(log)
    if args.since_hours is not None:
        cutoff = datetime.now(UTC) - timedelta(hours=args.since_hours)
        current = current[current[TIME] >= cutoff]
    if not args.schema.is_file():
        raise PavedMLError(f"no schema at {args.schema}: it names the model's input columns")
    features = Schema.from_yaml(args.schema).features
    if not args.reference.is_file():
        raise PavedMLError(f"no reference table at {args.reference}: run `dvc repro` or `dvc pull`")
    reference = pd.read_csv(args.reference)
    reference[PREDICTION] = _predict(args.model, reference, features)
    result = check_drift(
        reference,
        current,
        features=features,
        settings=settings,
        report=args.report,
        summary=args.summary,
    )
    for name, column in result.columns.items():
        mark = "DRIFTED" if column["drifted"] else "ok"
        print(f"{mark:>8}  {name}: {column['detail']}")
    verdict = "drift" if result.drifted else "no drift"
    print(
        f"{verdict}: {len(result.drifted_columns)} of {len(result.columns)} columns drifted "
        f"(share {result.share:.2f}, fails at {settings.drift_share}); "
        f"{result.rows['current']} logged rows against {result.rows['reference']}; "
        f"report {args.report}, summary {args.summary}"
    )
    return 1 if result.drifted else 0


def _read_params(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PavedMLError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PavedMLError(f"{path} holds no sections")
    return data


def _predict(model_dir: Path, frame: Any, features: list[str]) -> list[Any]:
    """The champion's predictions on the reference rows (the reference for the log's)."""
    if not (model_dir / "MLmodel").is_file():
        raise PavedMLError(f"no champion model in {model_dir}: run `dvc pull` or `dvc repro`")
    import mlflow.pyfunc

    values = mlflow.pyfunc.load_model(str(model_dir)).predict(frame[features])
    return list(values.tolist() if hasattr(values, "tolist") else values)


if __name__ == "__main__":
    raise SystemExit(main())
