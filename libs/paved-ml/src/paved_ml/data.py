"""Declared table schemas and their validation, used by the `prepare` stage.

A schema is plain data (a mapping, usually loaded from YAML) so that a data scientist
edits it without touching code; validation reports every problem at once, naming the
column and the first offending rows, so a failed stage says what to fix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from paved_ml.errors import SchemaError

__all__ = ["Column", "Schema", "file_md5"]

Dtype = Literal["float", "int", "str", "bool"]
_DTYPES: dict[str, str] = {"float": "fi", "int": "i", "str": "OSU", "bool": "b"}
_SHOWN_ROWS = 5


@dataclass(frozen=True, kw_only=True)
class Column:
    """One column: its type, whether it may be empty, and its allowed values or range."""

    name: str
    dtype: Dtype
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None

    def problems(self, series: pd.Series[Any]) -> list[str]:
        """Describe every way `series` breaks this column's rules."""
        found: list[str] = []
        nulls = series.isna()
        if nulls.any() and not self.nullable:
            found.append(f"column '{self.name}': empty values in rows {_rows(nulls)}")
        values = series[~nulls]
        if values.dtype.kind not in _DTYPES[self.dtype] and not _whole_floats(self, values):
            found.append(
                f"column '{self.name}': expected {self.dtype}, found {values.dtype} "
                f"(e.g. {values.iloc[0]!r})"
                if len(values)
                else f"column '{self.name}': expected {self.dtype}, found {values.dtype}"
            )
            return found
        if self.min is not None and (low := values < self.min).any():
            found.append(f"column '{self.name}': values below {self.min} in rows {_rows(low)}")
        if self.max is not None and (high := values > self.max).any():
            found.append(f"column '{self.name}': values above {self.max} in rows {_rows(high)}")
        if self.allowed is not None and (bad := ~values.isin(self.allowed)).any():
            found.append(
                f"column '{self.name}': values outside {list(self.allowed)} in rows {_rows(bad)}"
            )
        return found


@dataclass(frozen=True)
class Schema:
    """An ordered set of columns; the last one named `target` is what the model predicts."""

    columns: tuple[Column, ...]
    target: str
    extra_columns: Literal["forbid", "ignore"] = "forbid"
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {column.name: column for column in self.columns}
        if len(by_name) != len(self.columns):
            raise SchemaError("schema names a column twice")
        if self.target not in by_name:
            raise SchemaError(f"schema target '{self.target}' is not one of its columns")
        object.__setattr__(self, "_by_name", by_name)

    @property
    def features(self) -> list[str]:
        """The model's input columns, in declared order."""
        return [column.name for column in self.columns if column.name != self.target]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """Build a schema from `{target: ..., columns: {name: {dtype: ..., ...}}}`."""
        try:
            columns = tuple(
                Column(
                    name=name,
                    dtype=spec["dtype"],
                    nullable=bool(spec.get("nullable", False)),
                    min=spec.get("min"),
                    max=spec.get("max"),
                    allowed=tuple(spec["allowed"]) if "allowed" in spec else None,
                )
                for name, spec in dict(data["columns"]).items()
            )
            target = str(data["target"])
        except (KeyError, TypeError) as exc:
            raise SchemaError(f"schema is missing {exc}: needs 'target' and 'columns'") from exc
        for column in columns:
            if column.dtype not in _DTYPES:
                raise SchemaError(
                    f"column '{column.name}': unknown dtype '{column.dtype}' "
                    f"(use one of {', '.join(_DTYPES)})"
                )
        return cls(columns, target, data.get("extra_columns", "forbid"))

    @classmethod
    def from_yaml(cls, path: Path) -> Schema:
        """Load a schema file."""
        return cls.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))

    def problems(self, frame: pd.DataFrame) -> list[str]:
        """Every way `frame` breaks the schema; empty when it conforms."""
        found = [f"missing column '{name}'" for name in self._by_name if name not in frame]
        if self.extra_columns == "forbid":
            found += [f"unexpected column '{name}'" for name in frame if name not in self._by_name]
        if frame.empty:
            found.append("the table has no rows")
        for column in self.columns:
            if column.name in frame:
                found += column.problems(frame[column.name])
        return found

    def validate(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Return `frame` in schema column order, or raise SchemaError listing every problem."""
        found = self.problems(frame)
        if found:
            raise SchemaError("data does not match the schema:\n  " + "\n  ".join(found))
        return frame[[column.name for column in self.columns]]


def file_md5(path: Path) -> str:
    """The md5 of a file's bytes: the hash DVC 3 records for a file in dvc.lock."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _whole_floats(column: Column, values: pd.Series[Any]) -> bool:
    """An int column with empty cells reads as floats: accept it when every value is whole."""
    return column.dtype == "int" and values.dtype.kind == "f" and bool((values % 1 == 0).all())


def _rows(mask: pd.Series[bool]) -> str:
    index: Sequence[Any] = list(mask[mask].index)
    shown = ", ".join(str(row) for row in index[:_SHOWN_ROWS])
    more = len(index) - _SHOWN_ROWS
    return f"{shown} (+{more} more)" if more > 0 else shown
