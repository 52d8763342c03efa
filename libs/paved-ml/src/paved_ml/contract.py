"""The data contract: a team's table declared once, with pandera, and read by everything else.

A team repo declares its table as a pandera `DataFrameModel` (src/<package>/contract.py)
and wraps it in a `Contract` naming the target column. From that one declaration:

- the `prepare` stage validates the raw table (`validate`): every failure is reported at
  once, by column and check, with the offending row indices and values;
- the service's request model (`row_model`): one strict pydantic field per input column,
  with the contract's type, range (`ge`, `le`, `gt`, `lt`) and allowed values (`isin`);
- the drift check's columns (`features`), and the log rows the contract refuses
  (`violations`).

Change the contract and the three follow.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from paved_ml.errors import SchemaError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Contract", "ContractError", "load_contract"]

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
    """A pandera DataFrameModel (or DataFrameSchema) and the name of its target column."""

    model: Any
    target: str

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

    @cached_property
    def row_model(self) -> type[BaseModel]:
        """A strict pydantic model of one request row: the input columns, typed and bounded."""
        fields: dict[str, Any] = {}
        for name in self.features:
            column = self.schema.columns[name]
            annotation, bounds = _field_of(name, column)
            if column.nullable:
                fields[name] = (annotation | None, Field(None, **bounds))
            else:
                fields[name] = (annotation, Field(..., **bounds))
        config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
        row: type[BaseModel] = create_model("Row", __config__=config, **fields)
        return row


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


def _field_of(name: str, column: Any) -> tuple[Any, dict[str, Any]]:
    """The annotation and Field bounds of one contract column."""
    kind = str(column.dtype)
    bounds: dict[str, Any] = {}
    allowed: list[Any] | None = None
    for check in column.checks:
        statistics = check.statistics or {}
        if check.name in _BOUNDS:
            keyword, statistic = _BOUNDS[check.name]
            bounds[keyword] = statistics[statistic]
        elif check.name == "isin":
            allowed = list(statistics["allowed_values"])
    if allowed is not None:
        return Literal.__getitem__(tuple(allowed)), bounds
    if kind.startswith(("float", "Float")):
        return float, {**bounds, "allow_inf_nan": False}
    if kind.startswith(("int", "Int", "uint", "UInt")):
        return int, bounds
    if kind in ("bool", "boolean"):
        return bool, bounds
    if kind in ("str", "string", "object"):
        return str, bounds
    raise SchemaError(f"contract column '{name}' has type {kind}, which a request cannot carry")


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
