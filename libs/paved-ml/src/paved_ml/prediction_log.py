"""The prediction log: what a service was asked and answered, as Parquet files, off the hot path.

Off unless configured. `PAVED_PREDICTION_LOG` names a folder; each sampled request's rows
(its input columns), predictions and their ids (`prediction_id`, what labels that arrive
later are joined on: `paved_ml.feedback`), the model's name and version and the time are queued in
memory by `record` (a few microseconds: no I/O, no lock held while writing) and a
background thread writes them out. Files are only ever added, never changed: a file is
rolled when it holds `PAVED_PREDICTION_LOG_ROWS` rows (default 10000) or its first row is
`PAVED_PREDICTION_LOG_SECONDS` old (default 60), written under a temporary name and renamed
into place, so a reader never sees half a file. `PAVED_PREDICTION_LOG_RATE` (0 to 1,
default 1) is the share of requests recorded. When the queue holds more than
`PAVED_PREDICTION_LOG_MAX_PENDING` rows (default 100000) a request is dropped from the log
and counted, rather than let memory grow or the request wait.

The log never takes the service down, whatever its storage does. A folder that cannot be
made at start-up is tried again at each write; one deleted while serving is made again.
Rows that cannot be written are dropped and counted. The folder is capped: once the log's
files hold more than `PAVED_PREDICTION_LOG_MAX_BYTES` (default 1 GiB), the oldest files are
deleted until they fit. Each of these is logged, and counted by kind in `problems`
("unwritable rows", "dropped rows", "deleted files"), which the service exports as the
metric `paved_prediction_log_problems_total` (see `on_problem`).

This module never imports the service; `read_prediction_log` reads the folder back.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paved_ml.errors import PavedMLError

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import ArrayLike

__all__ = [
    "LOG_ENV",
    "LogSettings",
    "PredictionLog",
    "read_prediction_log",
]

LOG_ENV = "PAVED_PREDICTION_LOG"
#: Columns every log file has besides the model's inputs.
TIME, MODEL_NAME, MODEL_VERSION, PREDICTION, PREDICTION_ID = (
    "timestamp",
    "model_name",
    "model_version",
    "prediction",
    "prediction_id",
)
_SUFFIX = ".parquet"
#: The settings above 0, and the variable (after PAVED_PREDICTION_LOG_) that sets each.
_VARIABLES = {
    "max_rows": "ROWS",
    "max_seconds": "SECONDS",
    "max_pending": "MAX_PENDING",
    "max_bytes": "MAX_BYTES",
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    """Where and how much to log; `from_env` reads them from the PAVED_PREDICTION_LOG* variables."""

    folder: Path
    rate: float = 1.0
    max_rows: int = 10_000
    max_seconds: float = 60.0
    max_pending: int = 100_000
    max_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise PavedMLError(f"{LOG_ENV}_RATE={self.rate}: give a share between 0 and 1")
        for name, suffix in _VARIABLES.items():
            if getattr(self, name) <= 0:
                raise PavedMLError(f"{LOG_ENV}_{suffix}={getattr(self, name)}: must be above 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LogSettings | None:
        """The settings from the environment; None (no log) unless PAVED_PREDICTION_LOG is set."""
        env = os.environ if env is None else env
        folder = env.get(LOG_ENV, "").strip()
        if not folder:
            return None
        numbers: dict[str, Any] = {}
        for name, suffix in {"rate": "RATE", **_VARIABLES}.items():
            kind = int if name in ("max_rows", "max_pending", "max_bytes") else float
            raw = env.get(f"{LOG_ENV}_{suffix}", "").strip()
            if raw:
                try:
                    numbers[name] = kind(raw)
                except ValueError as exc:
                    raise PavedMLError(
                        f"{LOG_ENV}_{suffix}={raw!r}: not a {kind.__name__}"
                    ) from exc
        return cls(folder=Path(folder), **numbers)


@dataclass
class _Batch:
    """One request as recorded: inputs by column, predictions (kept as given), ids, and when.

    `at` is seconds since the epoch: cheaper to take per request than a datetime.
    """

    columns: Mapping[str, ArrayLike]
    predictions: Sequence[Any]
    at: float
    ids: Sequence[str] | None = None

    @property
    def size(self) -> int:
        return len(self.predictions)


class PredictionLog:
    """Queues sampled requests in memory; a daemon thread writes them as Parquet files."""

    def __init__(self, settings: LogSettings, *, model_name: str, model_version: str) -> None:
        self.settings = settings
        self.model_name, self.model_version = model_name, model_version
        self.dropped = 0
        self.written_files = 0
        #: What went wrong, counted by kind (see the module doc); never raised.
        self.problems: dict[str, int] = {}
        #: Called with (kind, count) as each problem is counted (the service's metric).
        self.on_problem: Callable[[str, int], None] | None = None
        self._queue: deque[_Batch] = deque()
        self._counts = threading.Lock()  # guards _pending (held for an addition, no I/O)
        self._pending = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sequence = 0
        self._random = random.Random()
        try:
            settings.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # tried again at each write: the service serves meanwhile
            logger.warning("prediction log: cannot make %s (%s)", settings.folder, exc)
        self._thread = threading.Thread(target=self._run, name="paved-prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    @classmethod
    def from_env(cls, *, model_name: str, model_version: str) -> PredictionLog | None:
        """A log configured by the environment, or None when PAVED_PREDICTION_LOG is unset."""
        settings = LogSettings.from_env()
        if settings is None or settings.rate == 0:
            return None
        return cls(settings, model_name=model_name, model_version=model_version)

    def record(
        self,
        columns: Mapping[str, ArrayLike],
        predictions: Sequence[Any],
        ids: Sequence[str] | None = None,
    ) -> bool:
        """Queue one request (inputs by column, one prediction and its id per row) if sampled.

        The columns are kept as given (not copied): pass ones nothing changes afterwards.
        Returns whether the request was queued; never blocks on I/O, never raises.
        """
        if self.settings.rate < 1.0 and self._random.random() >= self.settings.rate:
            return False
        batch = _Batch(columns, predictions, time.time(), ids)
        with self._counts:
            queued = self._pending < self.settings.max_pending
            if queued:
                self._pending += batch.size
                due = self._pending >= self.settings.max_rows
            else:
                self.dropped += 1
        if not queued:
            self._problem("dropped rows", batch.size)
            return False
        self._queue.append(batch)
        if due:
            self._wake.set()
        return True

    def flush(self) -> None:
        """Write everything queued now (a file per `max_rows` rows)."""
        self._write(self._drain(), final=True)

    def close(self) -> None:
        """Stop the writer thread and write what is queued."""
        if not self._stop.is_set():
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=30)
            self.flush()
            if self.dropped:
                logger.warning("prediction log: %d requests dropped (queue full)", self.dropped)

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        held: list[_Batch] = []
        while not self._stop.is_set():
            self._wake.wait(timeout=min(1.0, self.settings.max_seconds))
            self._wake.clear()
            held += self._drain()
            rows = sum(batch.size for batch in held)
            oldest = held[0].at if held else None
            if rows >= self.settings.max_rows or (
                oldest is not None and time.time() - oldest >= self.settings.max_seconds
            ):
                held = self._write(held, final=False)
        # close() writes what is left, including what this thread held.
        self._queue.extendleft(reversed(held))

    def _drain(self) -> list[_Batch]:
        taken: list[_Batch] = []
        while self._queue:
            taken.append(self._queue.popleft())
        with self._counts:
            self._pending -= sum(batch.size for batch in taken)
        return taken

    def _write(self, batches: list[_Batch], *, final: bool) -> list[_Batch]:
        """Write `batches` in files of at most `max_rows` rows; return the batches held back.

        Unless `final`, a last part smaller than `max_rows` is written only once its first
        row is `max_seconds` old; until then it is handed back to be held.
        """
        limit, start = self.settings.max_rows, 0
        while start < len(batches):
            end, rows = start, 0
            while end < len(batches) and (end == start or rows + batches[end].size <= limit):
                rows += batches[end].size
                end += 1
            part = batches[start:end]
            young = time.time() - part[0].at < self.settings.max_seconds
            if not final and end == len(batches) and rows < limit and young:
                return part
            try:
                self._write_file(part)
            except Exception as exc:  # a full disk must not take the service down
                logger.warning("prediction log: %d rows could not be written (%s)", rows, exc)
                self._problem("unwritable rows", rows)
            self._cap()  # after a failure too: a disk the log filled gets room back
            start = end
        return []

    def _write_file(self, batches: list[_Batch]) -> None:
        """Write one file of `batches`.

        The service's event loop waits while this thread holds the GIL, so the columns are
        built with a handful of array operations, not a Python loop per row. fastparquet
        writes the file: pyarrow would add 140 MB to the service image.
        """
        import numpy as np
        import pandas as pd
        from fastparquet import write

        sizes = np.fromiter((batch.size for batch in batches), np.int64, len(batches))
        count = int(sizes.sum())
        stamps = np.fromiter((batch.at for batch in batches), np.float64, len(batches))
        micros = np.repeat((stamps * 1e6).astype(np.int64), sizes)
        columns: dict[str, Any] = {
            TIME: pd.to_datetime(micros, unit="us", utc=True),
            MODEL_NAME: [self.model_name] * count,
            MODEL_VERSION: [self.model_version] * count,
        }
        for name in batches[0].columns:
            columns[name] = np.concatenate([batch.columns[name] for batch in batches])
        columns[PREDICTION] = list(chain.from_iterable(batch.predictions for batch in batches))
        columns[PREDICTION_ID] = list(
            chain.from_iterable(
                batch.ids if batch.ids is not None else [None] * batch.size for batch in batches
            )
        )
        self._sequence += 1
        stamp = datetime.fromtimestamp(batches[0].at, UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"predictions-{stamp}-{os.getpid()}-{self._sequence:06d}{_SUFFIX}"
        final = self.settings.folder / name
        partial = final.with_name(f".{name}.partial")
        self.settings.folder.mkdir(parents=True, exist_ok=True)  # made again if deleted
        try:
            write(str(partial), pd.DataFrame(columns), compression="SNAPPY", stats=False)
            partial.rename(final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        self.written_files += 1

    def _cap(self) -> None:
        """Delete the oldest log files until the folder's log files fit in `max_bytes`."""
        try:
            files = sorted(
                (entry.name, entry.stat().st_size)
                for entry in os.scandir(self.settings.folder)
                if entry.name.startswith("predictions-") and entry.name.endswith(_SUFFIX)
            )  # named by their first row's time: oldest first
        except OSError:
            return
        total = sum(size for _, size in files)
        deleted = 0
        for name, size in files:
            if total <= self.settings.max_bytes:
                break
            try:
                (self.settings.folder / name).unlink()
            except FileNotFoundError:  # another worker's cap took it first
                total -= size
                continue
            except OSError as exc:
                logger.warning("prediction log: cannot delete %s (%s)", name, exc)
                continue
            total -= size
            deleted += 1
        if deleted:
            logger.warning(
                "prediction log: %d oldest files deleted to keep it under %d bytes",
                deleted,
                self.settings.max_bytes,
            )
            self._problem("deleted files", deleted)

    def _problem(self, kind: str, count: int) -> None:
        with self._counts:
            self.problems[kind] = self.problems.get(kind, 0) + count
        if self.on_problem is not None:
            try:
                self.on_problem(kind, count)
            except Exception:  # a metric that fails is not the request's problem
                logger.debug("prediction log: on_problem failed", exc_info=True)


def read_prediction_log(location: str | Path) -> pd.DataFrame:
    """Every row of the log at `location` (oldest file first), as one frame.

    `location` is a folder, or an fsspec URL (`s3://bucket/prefix`, with that filesystem's
    package installed). A missing folder, or one without log files, is a PavedMLError that
    says so.
    """
    import fsspec
    import pandas as pd

    with storage_errors("the prediction log", location):
        fs, root = fsspec.core.url_to_fs(str(location))
        if not fs.isdir(root):
            raise PavedMLError(
                f"no prediction log at {location}: set {LOG_ENV} on the service to start one"
            )
        files = sorted(fs.glob(f"{root.rstrip('/')}/predictions-*{_SUFFIX}"))
        if not files:
            raise PavedMLError(
                f"the prediction log at {location} is empty: no requests recorded yet"
            )
        frames = []
        # fastparquet, which wrote the files, reads them too. pandas' default (pyarrow, where
        # installed) can abort the process at exit after a read (apache/arrow#34314):
        # measured here, 15 of 80 short runs that read one file exited 134.
        for path in files:
            with fs.open(path, "rb") as handle:
                frames.append(pd.read_parquet(handle, engine="fastparquet"))
    return pd.concat(frames, ignore_index=True)


@contextlib.contextmanager
def storage_errors(what: str, location: str | Path) -> Iterator[None]:
    """Storage that refuses, as one PavedMLError: `cannot read <what> at <location>: <error>`.

    No credentials, access denied, its fsspec package missing: whatever the store raises.
    A PavedMLError passes as it is.
    """
    try:
        yield
    except PavedMLError:
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300]
        raise PavedMLError(
            f"cannot read {what} at {location}: {type(exc).__name__}: {detail}"
        ) from exc
