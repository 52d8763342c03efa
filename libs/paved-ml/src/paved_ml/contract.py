"""The data contract: a team's table declared once, with pandera, and read by everything else.

A team repo declares its table as a pandera `DataFrameModel` (src/<package>/contract.py)
and wraps it in a `Contract` naming the target column. From that one declaration:

- the `prepare` stage validates the raw table (`validate`): every failure is reported at
  once, by column and check, with the offending row indices and values;
- the service's request model (`row_model`): one strict pydantic field per input column,
  with the contract's type, range (`ge`, `le`, `gt`, `lt`) and allowed values (`isin`),
  and only values the column's dtype holds (`RowField`, `build_row_model`: the one builder
  of a request row, which a champion without a contract uses too);
- the drift report's columns (`features`), and the log rows the contract refuses
  (`violations`);
- the smoke test after a deploy: its `examples` are what it sends, and what comes back must
  be valid values of the target (`validate_predictions`).

Change the contract and the three follow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from paved_ml.errors import SchemaError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Contract", "ContractError", "RowField", "build_row_model", "load_contract"]

_SHOWN_ROWS = 5
#: pandera's checks of the table's columns, and how a failure of each is told.
_TABLE_CHECKS = {"column_in_dataframe": "missing column", "column_in_schema": "unexpected column"}
#: pandera check names and the pydantic Field bound each becomes.
_BOUNDS = {
    "greater_than_or_equal_to": ("ge", "min_value"),
    "less_than_or_equal_to": ("le", "max_value"),
    "greater_than": ("gt", "min_value"),
    "less_than": ("lt", "max_value"),
}


class ContractError(SchemaError):
    """Data that breaks the contract; `failures` lists (column, check, rows, values)."""

    def __init__(self, message: str, failures: list[tuple[str, str, list[Any], list[Any]]]):
        super().__init__(message)
        self.failures = failures


@dataclass(frozen=True)
class Contract:
    """A pandera DataFrameModel (or DataFrameSchema), its target column, and example rows.

    The examples are request rows (the inputs only) that the smoke test sends a deployed
    service.
    """

    model: Any
    target: str
    examples: Sequence[Mapping[str, Any]] = ()

    @cached_property
    def schema(self) -> Any:
        """The pandera DataFrameSchema."""
        to_schema = getattr(self.model, "to_schema", None)
        schema = to_schema() if callable(to_schema) else self.model
        if self.target not in schema.columns:
            raise SchemaError(f"the contract's target '{self.target}' is not one of its columns")
        return schema

    @property
    def columns(self) -> list[str]:
        """Every declared column, in declared order."""
        return list(self.schema.columns)

    @property
    def features(self) -> list[str]:
        """The model's input columns (every column but the target), in declared order."""
        return [name for name in self.columns if name != self.target]

    def validate(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` in contract column order, or a ContractError naming every failure."""
        return _validated(self.schema, frame)[self.columns]

    def validate_inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame`'s input columns (no target; other columns ignored), validated, in order."""
        return _validated(self._inputs_schema, frame[self.features])

    @cached_property
    def _inputs_schema(self) -> Any:
        return self.schema.remove_columns([self.target])

    def violations(self, frame: pd.DataFrame) -> dict[str, int]:
        """How many rows of `frame` (its input columns) break the contract, per column."""
        inputs = frame[self.features].assign(**{self.target: _any_valid(self)})
        try:
            self.validate(inputs)
        except ContractError as exc:
            counts: dict[str, int] = {}
            for column, _, rows, _ in exc.failures:
                counts[column] = counts.get(column, 0) + len(set(rows))
            return counts
        return {}

    def validate_predictions(self, predictions: Sequence[Any]) -> None:
        """A ContractError unless every prediction is a valid value of the target column."""
        import pandas as pd

        target = self.schema.remove_columns(self.features)
        _validated(target, pd.DataFrame({self.target: list(predictions)}))

    @cached_property
    def row_model(self) -> type[BaseModel]:
        """A strict pydantic model of one request row: the input columns, typed and bounded."""
        return build_row_model(
            [_row_field(name, self.schema.columns[name]) for name in self.features]
        )


@dataclass(frozen=True)
class RowField:
    """One field of a request row.

    `dtype` is the numpy dtype its values must fit (`float64`, `float32`, `int64`,
    `int32`, ..., `bool`, `str`); `bounds` are pydantic's `ge`, `le`, `gt`, `lt`;
    `allowed` lists the only values it takes (its type is then theirs).
    """

    name: str
    dtype: str
    nullable: bool = False
    bounds: Mapping[str, Any] = field(default_factory=dict)
    allowed: tuple[Any, ...] | None = None


def build_row_model(fields: Sequence[RowField]) -> type[BaseModel]:
    """The strict pydantic model of a request row with `fields`.

    Unknown keys, wrong types (no coercion), missing fields and nulls where a field is not
    nullable are refused. So is a number the field's dtype cannot hold: an integer outside
    its range, a float that is not finite in it (JSON's NaN and Infinity, and 1e999, which
    parses as infinity), and an integer literal a float dtype cannot hold exactly (2**70 is
    a float64, 2**70 + 1 is not).
    """
    declared: dict[str, Any] = {}
    for row_field in fields:
        annotation = _annotation(row_field)
        if row_field.nullable:
            declared[row_field.name] = (annotation | None, Field(None))
        else:
            declared[row_field.name] = (annotation, Field(...))
    config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    row: type[BaseModel] = create_model("Row", __config__=config, **declared)
    return row


def _annotation(row_field: RowField) -> Any:
    """The annotation of one row field: its type, the dtype's limits and the declared bounds."""
    if row_field.allowed is not None:
        return Literal.__getitem__(row_field.allowed)
    kind = np.dtype(row_field.dtype) if row_field.dtype not in ("bool", "str") else None
    bounds = dict(row_field.bounds)
    if kind is not None and kind.kind in "iu":
        limits = np.iinfo(kind)
        bounds["ge"] = max(int(limits.min), bounds.get("ge", int(limits.min)))
        bounds["le"] = min(int(limits.max), bounds.get("le", int(limits.max)))
        return Annotated[int, Field(**bounds)]
    if kind is not None and kind.kind == "f":
        largest = float(np.finfo(kind).max)
        bounds["ge"] = max(-largest, bounds.get("ge", -largest))
        bounds["le"] = min(largest, bounds.get("le", largest))
        return Annotated[
            float,
            Field(**bounds, allow_inf_nan=False),
            BeforeValidator(_exact_integers(kind.type)),
        ]
    if kind is not None:
        raise SchemaError(
            f"row field '{row_field.name}' has dtype {kind}, which a request cannot carry"
        )
    python_type = bool if row_field.dtype == "bool" else str
    return Annotated[python_type, Field(**bounds)] if bounds else python_type


def _exact_integers(dtype: Any) -> Callable[[Any], Any]:
    """A validator that rejects an integer `dtype` cannot hold exactly; passes the rest on."""
    name = np.dtype(dtype).name

    def check(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                with np.errstate(over="ignore"):
                    converted = dtype(value)
                exact = bool(np.isfinite(converted)) and int(converted) == value
            except OverflowError:
                exact = False
            if not exact:
                raise ValueError(f"integer not exactly representable as {name}")
        return value

    return check


def _validated(schema: Any, frame: pd.DataFrame) -> pd.DataFrame:
    import pandera.errors

    try:
        valid: pd.DataFrame = schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        failures = _failures(exc.failure_cases)
        lines = [_describe(*failure) for failure in failures]
        raise ContractError(
            "data breaks the contract:\n  " + "\n  ".join(lines), failures
        ) from None
    return valid


def load_contract(spec: str) -> Contract:
    """The Contract named `module:attribute` (from [tool.paved] contract), imported."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SchemaError(f"contract {spec!r}: name it as module:attribute")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise SchemaError(f"contract {spec!r} cannot be imported: {exc}") from exc
    if not isinstance(found, Contract):
        raise SchemaError(f"contract {spec!r} is a {type(found).__name__}, not a Contract")
    return found


def _row_field(name: str, column: Any) -> RowField:
    """The request-row field of one contract column: its dtype, bounds and allowed values."""
    kind = str(column.dtype)
    bounds: dict[str, Any] = {}
    allowed: tuple[Any, ...] | None = None
    for check in column.checks:
        statistics = check.statistics or {}
        if check.name in _BOUNDS:
            keyword, statistic = _BOUNDS[check.name]
            bounds[keyword] = statistics[statistic]
        elif check.name == "isin":
            allowed = tuple(statistics["allowed_values"])
    lowered = kind.lower()
    if lowered.startswith(("float", "int", "uint")):
        dtype = lowered  # pandas' nullable Int64 holds what numpy's int64 holds
    elif lowered in ("bool", "boolean"):
        dtype = "bool"
    elif lowered in ("str", "string", "object"):
        dtype = "str"
    else:
        raise SchemaError(f"contract column '{name}' has type {kind}, which a request cannot carry")
    return RowField(name, dtype, nullable=bool(column.nullable), bounds=bounds, allowed=allowed)


def _failures(cases: pd.DataFrame) -> list[tuple[str, str, list[Any], list[Any]]]:
    """Pandera's failure cases grouped by column and check: rows and values of each."""
    grouped: dict[tuple[str, str], tuple[list[Any], list[Any]]] = {}
    for case in cases.itertuples(index=False):
        column = str(case.column)
        if str(case.check) in _TABLE_CHECKS:  # the case is the column that is missing or extra
            column = str(case.failure_case)
        rows, values = grouped.setdefault((column, str(case.check)), ([], []))
        if case.index is not None:
            rows.append(case.index)
        values.append(case.failure_case)
    return [(column, check, rows, values) for (column, check), (rows, values) in grouped.items()]


def _describe(column: str, check: str, rows: list[Any], values: list[Any]) -> str:
    if check in _TABLE_CHECKS:
        return f"{_TABLE_CHECKS[check]} '{column}'"
    if not rows:
        return f"column '{column}': {check} failed ({_rows(values)})"
    return f"column '{column}': {check} failed in rows {_rows(rows)} (values {_rows(values)})"


def _any_valid(contract: Contract) -> Any:
    """A target value the contract accepts (a log has none): only the inputs are judged."""
    column = contract.schema.columns[contract.target]
    for check in column.checks:
        if check.name == "isin":
            return next(iter((check.statistics or {})["allowed_values"]))
    kind = str(column.dtype)
    return 0 if kind.startswith(("int", "Int", "uint")) else 0.0 if "float" in kind else ""


def _rows(items: list[Any]) -> str:
    shown = ", ".join(str(item) for item in items[:_SHOWN_ROWS])
    more = len(items) - _SHOWN_ROWS
    return f"{shown} (+{more} more)" if more > 0 else shown
