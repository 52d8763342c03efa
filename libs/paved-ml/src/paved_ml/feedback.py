"""Accuracy from real labels: the prediction log joined with the labels that arrive later.

Drift in the inputs is half the picture; the other half is whether the model is still
right. Every prediction the service makes has an id (`prediction_id`, in its answer and in
the prediction log). Labels come back later as a table of id and true label;
`judge_feedback` joins them with the log by id, computes the metrics per time window of the
predictions, and fails when the latest window falls below a threshold of params.yaml's
`monitoring` section (`min_<metric>`, e.g. `min_f1_macro: 0.85`).

Nothing is dropped silently: labels whose id matches no logged prediction are counted
(`unmatched`), an id labelled twice keeps its last label and is counted (`relabelled`), and
logged predictions still waiting for a label are counted (`unlabelled`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paved_ml.errors import PavedMLError
from paved_ml.prediction_log import PREDICTION, PREDICTION_ID, TIME, storage_errors

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "METRICS",
    "FeedbackResult",
    "FeedbackSettings",
    "judge_feedback",
    "read_labels",
]


def _accuracy(truth: Any, predicted: Any) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(truth, predicted))


def _macro(name: str) -> Callable[[Any, Any], float]:
    def metric(truth: Any, predicted: Any) -> float:
        from sklearn import metrics

        score = getattr(metrics, f"{name}_score")
        return float(score(truth, predicted, average="macro", zero_division=0))

    return metric


#: The metrics computed per window, by the name a threshold uses (`min_<name>`).
METRICS: dict[str, Callable[[Any, Any], float]] = {
    "accuracy": _accuracy,
    "f1_macro": _macro("f1"),
    "precision_macro": _macro("precision"),
    "recall_macro": _macro("recall"),
}
#: The keys of params.yaml's `monitoring` section that belong to the drift report.
_DRIFT_KEYS = {"drift_share", "threshold", "min_rows"}


@dataclass(frozen=True, kw_only=True)
class FeedbackSettings:
    """How labels are judged (params.yaml, section `monitoring`)."""

    #: The windows the predictions are grouped in, by their time (a pandas frequency).
    window: str = "1D"
    #: Fewer labelled predictions than this in the latest window and it is not judged.
    min_labels: int = 30
    #: The lowest value of each metric the latest window may have (`min_<metric>`).
    minimums: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import pandas as pd

        try:
            with warnings.catch_warnings():  # a deprecated alias is refused below or works
                warnings.simplefilter("ignore", FutureWarning)
                pd.Timestamp("2026-01-01T12:34:56Z").floor(self.window)
        except (ValueError, TypeError) as exc:
            raise PavedMLError(
                f"monitoring.feedback_window={self.window!r}: not a fixed pandas frequency "
                "such as 1h, 6h, 1D or 7D"
            ) from exc
        if self.min_labels < 1:
            raise PavedMLError(f"monitoring.min_labels={self.min_labels}: must be at least 1")
        for name, value in self.minimums.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise PavedMLError(f"monitoring.min_{name}={value!r}: give a number")

    @classmethod
    def from_params(cls, section: Mapping[str, Any] | None) -> FeedbackSettings:
        """The settings from params.yaml's `monitoring` section (missing keys: defaults).

        A `min_<name>` whose name is not a metric in METRICS is an error naming it.
        """
        section = dict(section or {})
        minimums: dict[str, float] = {}
        for key, value in section.items():
            if not key.startswith("min_") or key in _DRIFT_KEYS or key == "min_labels":
                continue
            name = key.removeprefix("min_")
            if name not in METRICS:
                raise PavedMLError(
                    f"monitoring.{key}: {name!r} is not a metric paved-ml computes from labels "
                    f"({', '.join(METRICS)})"
                )
            minimums[name] = value
        return cls(
            window=str(section.get("feedback_window", "1D")),
            min_labels=section.get("min_labels", 30),
            minimums=minimums,
        )


@dataclass
class FeedbackResult:
    """The outcome: the metrics per window, and whether the latest window fails."""

    failed: bool
    #: Each threshold the latest window fell below: metric, value, threshold.
    below: list[dict[str, Any]]
    #: Oldest first: start (ISO time), labelled rows, metrics.
    windows: list[dict[str, Any]]
    settings: FeedbackSettings
    #: Labels read, joined with a logged prediction, and matching none.
    labels: int
    matched: int
    unmatched: int
    #: Ids labelled more than once (the last label counts).
    relabelled: int
    #: Logged predictions (with an id) that have no label yet.
    unlabelled: int

    @property
    def latest(self) -> dict[str, Any]:
        """The latest window: the one judged."""
        return self.windows[-1]

    def as_json(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {**asdict(self), "latest": self.latest}


_LABEL_SUFFIXES = (".csv", ".parquet")


def read_labels(location: str | Path) -> pd.DataFrame:
    """A labels table: a CSV or Parquet file, or a folder of them (read in name order).

    `location` is a path, or an fsspec URL (`s3://bucket/labels/`, `gs://...`, `az://...`,
    with that filesystem's package installed), as the prediction log's is. Storage that
    refuses is a PavedMLError that names it.
    """
    import fsspec
    import pandas as pd

    with storage_errors("the labels", location):
        fs, root = fsspec.core.url_to_fs(str(location))
        if fs.isdir(root):
            files = sorted(
                path for path in fs.ls(root, detail=False) if path.endswith(_LABEL_SUFFIXES)
            )
        elif fs.isfile(root):
            if not root.endswith(_LABEL_SUFFIXES):
                raise PavedMLError(f"{location}: labels are a .csv or .parquet file")
            files = [root]
        else:
            raise PavedMLError(
                f"no labels at {location}: give a .csv or .parquet file, or a folder"
            )
        if not files:
            raise PavedMLError(f"{location} holds no .csv or .parquet file of labels")
        frames = []
        for file in files:
            with fs.open(file, "rb") as handle:
                try:
                    parquet = file.endswith(".parquet")
                    frames.append(pd.read_parquet(handle) if parquet else pd.read_csv(handle))
                except (OSError, ValueError) as exc:
                    raise PavedMLError(f"{file}: cannot read it as labels ({exc})") from exc
    return pd.concat(frames, ignore_index=True)


def judge_feedback(
    log: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    label_column: str,
    settings: FeedbackSettings,
    summary: Path | None = None,
) -> FeedbackResult:
    """Join `labels` (`prediction_id`, `label_column`) with the `log` and judge the latest window.

    Writes the JSON `summary` when given. A table without the columns, a log without ids,
    no label matching any logged prediction, or fewer than `min_labels` in the latest
    window is a PavedMLError that says which.
    """
    import pandas as pd

    for name, frame, columns in (
        ("the labels", labels, [PREDICTION_ID, label_column]),
        ("the prediction log", log, [PREDICTION_ID, PREDICTION, TIME]),
    ):
        missing = [column for column in columns if column not in frame]
        if missing:
            raise PavedMLError(f"{name} have no column {', '.join(map(repr, missing))}")
    logged = log[log[PREDICTION_ID].notna()].drop_duplicates(PREDICTION_ID, keep="last")
    if logged.empty:
        raise PavedMLError(
            "the prediction log has no prediction ids: its rows were written by a service "
            "from a release before ids; labels can be joined with the rows served since"
        )
    ids = labels[PREDICTION_ID].astype(str)
    relabelled = int(ids.duplicated(keep="last").sum())
    given = pd.DataFrame({PREDICTION_ID: ids, "label": labels[label_column].to_numpy()})
    given = given.drop_duplicates(PREDICTION_ID, keep="last")
    joined = logged.merge(given, on=PREDICTION_ID, how="inner", validate="one_to_one")
    unmatched = len(given) - len(joined)
    if joined.empty:
        raise PavedMLError(
            f"none of the {len(given)} labels matches a logged prediction id: are they "
            "labels of this service's predictions, and is the log the one it writes?"
        )
    truth, predicted = _comparable(joined["label"], joined[PREDICTION])
    joined = joined.assign(_truth=truth, _predicted=predicted)
    windows = []
    for start, rows in joined.groupby(joined[TIME].dt.floor(settings.window), sort=True):
        scores = {
            name: metric(rows["_truth"], rows["_predicted"]) for name, metric in METRICS.items()
        }
        windows.append({"start": start.isoformat(), "rows": len(rows), "metrics": scores})
    latest = windows[-1]
    if latest["rows"] < settings.min_labels:
        raise PavedMLError(
            f"the latest window ({latest['start']}, {settings.window}) holds {latest['rows']} "
            f"labelled predictions, fewer than monitoring.min_labels ({settings.min_labels}): "
            "too few to judge"
        )
    below = [
        {"metric": name, "value": latest["metrics"][name], "threshold": threshold}
        for name, threshold in settings.minimums.items()
        if latest["metrics"][name] < threshold
    ]
    result = FeedbackResult(
        failed=bool(below),
        below=below,
        windows=windows,
        settings=settings,
        labels=len(labels),
        matched=len(joined),
        unmatched=unmatched,
        relabelled=relabelled,
        unlabelled=len(logged) - len(joined),
    )
    if summary is not None:
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
    return result


def _comparable(truth: pd.Series, predicted: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The labels and predictions as values of one type (a CSV's 1 and a log's "1" agree)."""
    if truth.dtype.kind in "iufb" and predicted.dtype.kind in "iufb":
        return truth, predicted
    return truth.astype(str), predicted.astype(str)
