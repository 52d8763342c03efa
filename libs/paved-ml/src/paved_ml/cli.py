"""`paved-ml`: the team repo's batch and monitoring commands, run from the repo root.

    paved-ml batch-predict INPUT    score a CSV or Parquet file (or a folder) with the champion
    paved-ml drift                  the prediction log against the training data
    paved-ml feedback LABELS        the model's accuracy from labels joined with the log by id
    paved-ml smoke URL              the contract's examples against a deployed service
    paved-ml deployed STATUS        record in the registry which version each environment runs
    paved-ml seed-registry          make the champion folder the champion of a new registry

Exit codes: 0 done (drift: no drift; feedback: above every threshold; smoke: every check
held), 1 drift past the thresholds in params.yaml, the latest window's accuracy below one,
or a smoke check failed, 2 bad input, nothing to judge or a setting that is wrong (the
message says which); never a traceback for those. drift and feedback log their result to
MLflow as a run of the project's experiment (`--no-tracking`: not).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from paved_ml.champion import DEFAULT_DIR
from paved_ml.contract import Contract
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
    drift.add_argument(
        "--contract",
        default=None,
        help="the data contract, module:attribute (default: [tool.paved] contract)",
    )
    drift.add_argument("--model", type=Path, default=DEFAULT_DIR)
    drift.add_argument(
        "--log",
        default=None,
        help=f"the prediction log, a folder or fsspec URL (default ${LOG_ENV} or {DEFAULT_LOG})",
    )
    drift.add_argument("--since-hours", type=float, default=None, help="only rows this recent")
    drift.add_argument("--report", type=Path, default=Path("reports/drift.html"))
    drift.add_argument("--summary", type=Path, default=Path("reports/drift.json"))
    drift.add_argument("--no-tracking", action="store_true", help="do not log the result")
    feedback = commands.add_parser(
        "feedback", help="the model's accuracy from labels joined with the prediction log"
    )
    feedback.add_argument(
        "labels",
        help="a .csv or .parquet of prediction_id, label (or a folder; a path or an fsspec URL)",
    )
    feedback.add_argument(
        "--label-column",
        default=None,
        help="the labels' column (default: the contract's target, else `label`)",
    )
    feedback.add_argument("--log", default=None, help="the prediction log (as for drift)")
    feedback.add_argument("--params", type=Path, default=Path("params.yaml"))
    feedback.add_argument(
        "--contract", default=None, help="module:attribute (default: [tool.paved])"
    )
    feedback.add_argument("--summary", type=Path, default=Path("reports/feedback.json"))
    feedback.add_argument("--no-tracking", action="store_true", help="do not log the result")
    batch = commands.add_parser("batch-predict", help="score a file or folder with the champion")
    batch.add_argument("input", type=Path, help="a .csv or .parquet file, or a folder of them")
    batch.add_argument("--output", type=Path, default=Path("data/scored/predictions.parquet"))
    batch.add_argument("--model", type=Path, default=DEFAULT_DIR)
    batch.add_argument("--contract", default=None, help="module:attribute (default: [tool.paved])")
    batch.add_argument("--memory-limit", default="256MB", help="memory for data, e.g. 512MB")
    batch.add_argument("--chunk-rows", type=int, default=None, help="rows per chunk (overrides)")
    check = commands.add_parser("smoke", help="the contract's examples against a service")
    check.add_argument("url", help="the service's base URL, e.g. http://iris-demo")
    check.add_argument("--contract", default=None, help="module:attribute (default: [tool.paved])")
    check.add_argument("--params", type=Path, default=Path("params.yaml"))
    check.add_argument("--requests", type=int, default=None, help="single-row requests timed")
    deployed = commands.add_parser(
        "deployed", help="set the staging/production aliases from `paved deploy status --json`"
    )
    deployed.add_argument("status", type=Path, help="the JSON `paved deploy status --json` wrote")
    deployed.add_argument(
        "--shared-only",
        action="store_true",
        help="do nothing (and say so) when the registry is a local sqlite file (CI)",
    )
    seed = commands.add_parser(
        "seed-registry", help="make the champion folder the champion of a new (CI) registry"
    )
    seed.add_argument("--model", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    commands_run = {
        "batch-predict": _batch,
        "drift": _drift,
        "feedback": _feedback,
        "smoke": _smoke,
        "deployed": _deployed,
        "seed-registry": _seed_registry,
    }
    try:
        return commands_run[args.command](args)
    except PavedMLError as exc:
        print(f"paved-ml {args.command}: {exc}", file=sys.stderr)
        return 2


def _drift(args: argparse.Namespace) -> int:
    import pandas as pd

    from paved_ml.drift import DriftSettings, detect_drift
    from paved_ml.prediction_log import read_prediction_log

    params = _read_params(args.params)
    settings = DriftSettings.from_params(params.get("monitoring"))
    current = read_prediction_log(_log_location(args.log))
    if args.since_hours is not None:
        cutoff = datetime.now(UTC) - timedelta(hours=args.since_hours)
        current = current[current[TIME] >= cutoff]
    contract = _contract(args.contract)
    features = contract.features
    if not args.reference.is_file():
        raise PavedMLError(f"no reference table at {args.reference}: run `dvc repro` or `dvc pull`")
    reference = pd.read_csv(args.reference)
    reference[PREDICTION] = _predict(args.model, reference, features)
    result = detect_drift(
        reference,
        current,
        contract=contract,
        settings=settings,
        report=args.report,
        summary=args.summary,
    )
    for name, column in result.columns.items():
        mark = "DRIFTED" if column["drifted"] else "ok"
        print(f"{mark:>8}  {name}: {column['detail']}")
    for name, count in result.violations.items():
        print(f"{'REFUSED':>8}  {name}: {count} logged rows break the data contract")
    verdict = "drift" if result.drifted else "no drift"
    print(
        f"{verdict}: {len(result.drifted_columns)} of {len(result.columns)} columns drifted "
        f"(share {result.share:.2f}, fails at {settings.drift_share}); "
        f"{result.rows['current']} logged rows against {result.rows['reference']}; "
        f"report {args.report}, summary {args.summary}"
    )
    figures = {
        "drift.share": result.share,
        "drift.columns_drifted": float(len(result.drifted_columns)),
        "drift.rows": float(result.rows["current"]),
    }
    _track(args, "drift", result.drifted, figures, _latest_version(current), args.summary)
    return 1 if result.drifted else 0


def _feedback(args: argparse.Namespace) -> int:
    from paved_ml.feedback import FeedbackSettings, judge_feedback, read_labels
    from paved_ml.prediction_log import read_prediction_log

    settings = FeedbackSettings.from_params(_read_params(args.params).get("monitoring"))
    labels = read_labels(args.labels)
    column = args.label_column
    if column is None:
        target = _contract(args.contract).target
        column = target if target in labels else "label"
    log = read_prediction_log(_log_location(args.log))
    result = judge_feedback(
        log, labels, label_column=column, settings=settings, summary=args.summary
    )
    names = list(result.latest["metrics"])
    print(f"{'window':<26} {'labelled':>8}  " + "  ".join(f"{name:>15}" for name in names))
    for window in result.windows:
        values = "  ".join(f"{window['metrics'][name]:>15.4f}" for name in names)
        print(f"{window['start']:<26} {window['rows']:>8}  {values}")
    for found in result.below:
        print(
            f"{'BELOW':>8}  {found['metric']}: {found['value']:.4f} in the latest window, "
            f"under monitoring.min_{found['metric']} ({found['threshold']})"
        )
    verdict = "accuracy below a threshold" if result.failed else "accuracy holds"
    thresholds = ", ".join(f"{k} >= {v}" for k, v in settings.minimums.items()) or "none set"
    print(
        f"{verdict}: {result.matched} of {result.labels} labels joined with a logged "
        f"prediction; {result.unmatched} match no logged prediction id, {result.relabelled} "
        f"relabel an id, {result.unlabelled} logged predictions await a label; thresholds: "
        f"{thresholds}; summary {args.summary}"
    )
    figures = {f"accuracy.{name}": value for name, value in result.latest["metrics"].items()}
    figures |= {
        "accuracy.labelled": float(result.latest["rows"]),
        "accuracy.unmatched_labels": float(result.unmatched),
    }
    _track(args, "accuracy", result.failed, figures, _latest_version(log), args.summary)
    return 1 if result.failed else 0


def _log_location(given: str | None) -> str:
    """The prediction log: as given, else $PAVED_PREDICTION_LOG, else logs/predictions."""
    return given or os.environ.get(LOG_ENV) or str(DEFAULT_LOG)


def _latest_version(log: Any) -> str | None:
    """The model version of the log's latest row (None for an empty log)."""
    from paved_ml.prediction_log import MODEL_VERSION

    if log.empty or MODEL_VERSION not in log:
        return None
    return str(log.sort_values(TIME)[MODEL_VERSION].iloc[-1])


def _track(
    args: argparse.Namespace,
    kind: str,
    failed: bool,
    figures: dict[str, float],
    version: str | None,
    summary: Path,
) -> None:
    """Log the check's result to MLflow; a tracking store that fails is a warning only."""
    if args.no_tracking:
        return
    from paved_ml.config import load_config
    from paved_ml.tracking import log_monitoring

    try:
        config = load_config()
        run = log_monitoring(
            config,
            kind=kind,
            failed=failed,
            metrics=figures,
            model_version=version,
            summary=summary,
        )
    except Exception as exc:  # the verdict stands whatever the tracking store does
        print(f"paved-ml {kind}: the result was not logged to MLflow: {exc}", file=sys.stderr)
        return
    print(f"logged to MLflow: run {run} of experiment {config.project!r}")


def _smoke(args: argparse.Namespace) -> int:
    from paved_ml.smoke import DEFAULT_REQUESTS, p99_budget, smoke

    budget = p99_budget(_read_params(args.params))
    report = smoke(
        args.url,
        _contract(args.contract),
        p99_ms=budget,
        requests=DEFAULT_REQUESTS if args.requests is None else args.requests,
    )
    for found in report.checks:
        print(f"{'ok' if found.ok else 'FAILED':>8}  {found.name}: {found.detail}")
    print(f"smoke {'passed' if report.ok else 'FAILED'}: {report.url}")
    return 0 if report.ok else 1


def _deployed(args: argparse.Namespace) -> int:
    import json

    from paved_ml.config import load_config
    from paved_ml.registry import record_deployed

    try:
        rows = json.loads(args.status.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PavedMLError(
            f"{args.status}: not the JSON of `paved deploy status --json`: {exc}"
        ) from exc
    if not isinstance(rows, list):
        raise PavedMLError(f"{args.status}: not the JSON of `paved deploy status --json`")
    config = load_config()
    if args.shared_only and config.tracking_uri.startswith("sqlite:"):
        print(
            f"the registry is a local file ({config.tracking_uri}): nothing shared to record in; "
            "set MLFLOW_TRACKING_URI to the tracking server"
        )
        return 0
    for row in rows:
        environment, name = str(row.get("environment")), str(row.get("model_name") or "")
        version = str(row.get("model_version") or "")
        if not version:
            print(f"{environment}: no model version known ({row.get('note') or 'undeployed'})")
            continue
        if name != config.model_name:
            raise PavedMLError(f"{environment} serves {name}, not this repo's {config.model_name}")
        before = record_deployed(config, environment, version)
        moved = "already" if before == version else f"was {'v' + before if before else 'unset'}"
        print(f"{environment}: {name} v{version} ({moved})")
    return 0


def _seed_registry(args: argparse.Namespace) -> int:
    from paved_ml.config import load_config
    from paved_ml.registry import seed_champion

    config = load_config()
    version = seed_champion(config, args.model)  # a RegistryError is a PavedMLError
    print(f"seeded {config.model_name} v{version} from {args.model} as the champion")
    return 0


def _contract(spec: str | None) -> Contract:
    from paved_ml.config import load_config
    from paved_ml.contract import load_contract

    spec = spec or load_config().contract
    if not spec:
        raise PavedMLError("no data contract: set [tool.paved] contract, or pass --contract")
    return load_contract(spec)


def _batch(args: argparse.Namespace) -> int:
    from paved_ml.batch import batch_predict, parse_size

    report = batch_predict(
        args.input,
        args.output,
        model_dir=args.model,
        contract=_contract(args.contract),
        memory_limit=parse_size(args.memory_limit),
        chunk_rows=args.chunk_rows,
    )
    print(
        f"batch-predict: {report.rows} rows from {len(report.files)} files in {report.chunks} "
        f"chunks, scored by {report.model_name} v{report.model_version} in {report.seconds:.1f} s"
        f" -> {report.output}"
    )
    return 0


def _read_params(path: Path) -> dict[str, Any]:
    from paved_ml.config import read_yaml_mapping

    return read_yaml_mapping(path) if path.is_file() else {}


def _predict(model_dir: Path, frame: Any, features: list[str]) -> list[Any]:
    """The champion's labels for the reference rows, as the service gives them."""
    from paved_ml.champion import load_champion

    values = load_champion(model_dir).predict(frame[features])[0]
    return list(values.tolist() if hasattr(values, "tolist") else values)


if __name__ == "__main__":
    raise SystemExit(main())
