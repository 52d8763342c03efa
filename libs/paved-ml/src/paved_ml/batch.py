"""Batch scoring: the champion over a file or a folder of CSV or Parquet, in bounded memory.

`batch_predict` reads its input a chunk at a time (pandas' chunked CSV reader, Parquet by
record batches), validates each chunk's input columns against the data contract (a failure
names the file, the columns, the checks and the row numbers, counted from 0 in that file),
predicts, and appends to one Parquet file: the chunk's own columns (ids the contract does
not declare pass through), `prediction`, `probability_<label>` for a classifier that gives
them, `model_name` and `model_version`. Memory holds one chunk: its size comes from
`memory_limit`. The output is written under a temporary name and renamed when complete,
so a run that fails leaves no output behind.

This module never imports the service.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paved_ml.champion import Champion, load_champion
from paved_ml.contract import Contract, ContractError
from paved_ml.errors import PavedMLError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BatchReport", "batch_predict", "parse_size"]

_SUFFIXES = (".csv", ".parquet")
#: Bytes a chunk costs per value read, at its peak (parsing, the frame, the model's copies).
_BYTES_PER_VALUE = 200
_MIN_ROWS = 1_000


@dataclass
class BatchReport:
    """What a batch run scored."""

    output: Path
    rows: int = 0
    chunks: int = 0
    files: list[str] = field(default_factory=list)
    model_name: str = ""
    model_version: str = ""
    seconds: float = 0.0


def batch_predict(
    source: Path,
    output: Path,
    *,
    model_dir: Path,
    contract: Contract,
    memory_limit: int = 256 << 20,
    chunk_rows: int | None = None,
) -> BatchReport:
    """Score every row of `source` (a CSV or Parquet file, or a folder of them) into `output`.

    `chunk_rows` (default: what `memory_limit` bytes hold, at least 1000 rows) bounds the
    rows in memory at once. Bad input is a PavedMLError naming what is wrong; nothing is
    written then.
    """
    started = time.perf_counter()
    files = _inputs(source)
    columns = len(contract.columns) + 8  # the contract's, and some passing through
    rows_per_chunk = chunk_rows or max(_MIN_ROWS, memory_limit // (_BYTES_PER_VALUE * columns))
    champion = load_champion(model_dir)
    report = BatchReport(output=output, files=[str(path) for path in files])
    report.model_name, report.model_version = champion.model_name, champion.version
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    writer: Any = None
    try:
        for path in files:
            for chunk in _chunks(path, rows_per_chunk):
                scored = _score(chunk, path, champion, contract)
                writer = _append(writer, scored, partial)
                report.rows += len(scored)
                report.chunks += 1
        if writer is None:
            raise PavedMLError(f"{source} holds no rows to score")
        writer.close()
        writer = None
        partial.rename(output)
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def parse_size(text: str) -> int:
    """Bytes from `512MB`, `2GiB`, `100k` or a plain number; a PavedMLError if unreadable."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", text.lower())
    if not match:
        raise PavedMLError(f"memory limit {text!r}: give bytes, or a number with KB, MB or GB")
    number, unit = float(match[1]), match[2]
    return int(number * 1024 ** " kmgt".index(unit or " "))


def _inputs(source: Path) -> list[Path]:
    if source.is_file():
        if source.suffix.lower() not in _SUFFIXES:
            raise PavedMLError(f"{source} is not a .csv or .parquet file")
        return [source]
    if source.is_dir():
        found = sorted(p for p in source.iterdir() if p.suffix.lower() in _SUFFIXES)
        if not found:
            raise PavedMLError(f"{source} holds no .csv or .parquet file")
        return found
    raise PavedMLError(f"no input at {source}")


def _chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """`path` in chunks of at most `rows` rows, each indexed by its row number in the file."""
    import pandas as pd

    if path.suffix.lower() == ".csv":
        yield from pd.read_csv(path, chunksize=rows)  # the index runs on across chunks
        return
    import pyarrow.parquet as pq

    first = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
        frame = batch.to_pandas()
        frame.index = pd.RangeIndex(first, first + len(frame))
        first += len(frame)
        yield frame


def _score(chunk: pd.DataFrame, path: Path, champion: Champion, contract: Contract) -> pd.DataFrame:
    missing = [name for name in contract.features if name not in chunk]
    if missing:
        raise PavedMLError(f"{path}: no column {', '.join(map(repr, missing))}")
    try:
        inputs = contract.validate_inputs(chunk)
    except ContractError as exc:
        raise PavedMLError(f"{path}: {exc}") from None
    scored = chunk.copy()
    # Labelled as the service labels them: the likeliest, from one model call.
    scored["prediction"], probabilities = champion.predict(inputs)
    if champion.labels is not None:
        for label, column in zip(champion.labels, probabilities.T, strict=True):
            scored[f"probability_{label}"] = column
    scored["model_name"] = champion.model_name
    scored["model_version"] = champion.version
    return scored.reset_index(drop=True)


def _append(writer: Any, frame: pd.DataFrame, path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    elif table.schema != writer.schema:
        table = table.cast(writer.schema)  # a chunk whose column read as another type
    writer.write_table(table)
    return writer
