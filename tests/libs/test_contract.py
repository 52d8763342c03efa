"""paved_ml.contract: one pandera declaration, read by validation, the request model, drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from paved_ml.contract import Contract, ContractError, load_contract
from paved_ml.errors import SchemaError
from pydantic import ValidationError

pytestmark = pytest.mark.libs


class Table(pa.DataFrameModel):
    size: float = pa.Field(ge=0, le=10)
    count: int = pa.Field(nullable=True)
    colour: str = pa.Field(isin=["red", "blue"])
    label: str = pa.Field(isin=["cat", "dog"])

    class Config:
        strict = True


CONTRACT = Contract(Table, target="label")


def good_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "size": [1.0, 2.5, 9.0],
            "count": pd.array([1, None, 3], dtype="Int64"),
            "colour": ["red", "blue", "red"],
            "label": ["cat", "dog", "cat"],
        }
    )


def test_a_valid_frame_passes_in_contract_order() -> None:
    frame = good_frame()[["label", "colour", "size", "count"]]
    assert list(CONTRACT.validate(frame).columns) == ["size", "count", "colour", "label"]
    assert CONTRACT.features == ["size", "count", "colour"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="colour"), "missing column 'colour'"),
        (lambda f: f.assign(extra=1), "unexpected column 'extra'"),
        (lambda f: f.assign(size=[-1.0, 2.0, 11.0]), r"column 'size': greater_than_or_equal_to\(0\) failed in rows 0 \(values -1.0\)"),  # noqa: E501
        (lambda f: f.assign(size=[-1.0, 2.0, 11.0]), r"column 'size': less_than_or_equal_to\(10\) failed in rows 2 \(values 11.0\)"),  # noqa: E501
        (lambda f: f.assign(colour=["red", "green", "pink"]), r"column 'colour': isin\(\['red', 'blue'\]\) failed in rows 1, 2 \(values green, pink\)"),  # noqa: E501
        (lambda f: f.assign(size=[1.0, np.nan, 2.0]), r"column 'size': not_nullable failed in rows 1"),  # noqa: E501
        (lambda f: f.assign(size=["a", "b", "c"]), r"column 'size': dtype\('float64'\) failed"),
    ],
)  # fmt: skip
def test_every_failure_is_named_with_its_column_check_and_rows(change, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        CONTRACT.validate(change(good_frame()))


def test_many_bad_rows_are_summarised() -> None:
    frame = pd.concat([good_frame()] * 3, ignore_index=True).assign(size=-1.0)
    with pytest.raises(ContractError, match=r"rows 0, 1, 2, 3, 4 \(\+4 more\)") as failure:
        CONTRACT.validate(frame)
    assert failure.value.failures[0][:2] == ("size", "greater_than_or_equal_to(0)")


def test_the_request_model_follows_the_contract() -> None:
    row = CONTRACT.row_model
    assert set(row.model_fields) == {"size", "count", "colour"}  # no target
    assert row(size=2.0, count=None, colour="blue").colour == "blue"
    for bad in ({"size": 11.0}, {"size": "2"}, {"colour": "green"}, {"extra": 1}, {"count": 1.5}):
        with pytest.raises(ValidationError) as failure:
            row(**{"size": 2.0, "count": 1, "colour": "red", **bad})
        assert failure.value.errors()[0]["loc"] == (next(iter(bad)),)
    with pytest.raises(ValidationError):
        row(size=float("inf"), count=1, colour="red")


class Narrow(pa.DataFrameModel):
    small: np.int32 = pa.Field(ge=-5)
    single: np.float32
    wide: float = pa.Field(lt=1e300)
    label: str

    class Config:
        strict = True


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("small", 2**31, "less_than_equal"),  # past int32, though the contract sets no max
        ("small", -6, "greater_than_equal"),  # the contract's bound, tighter than int32's
        ("single", 1e39, "less_than_equal"),  # past float32's largest
        ("single", 2**24 + 1, "value_error"),  # an integer float32 cannot hold exactly
        ("wide", 2**70 + 1, "value_error"),  # nor float64
        ("wide", 1e300, "less_than"),
    ],
)
def test_the_request_model_holds_only_what_the_columns_dtype_holds(
    field: str, value: float, error: str
) -> None:
    """One row builder (`build_row_model`) for a contract and a bare signature alike."""
    row = Contract(Narrow, target="label").row_model
    good = {"small": -5, "single": 1.5, "wide": float(2**70)}
    assert row(**good).small == -5
    with pytest.raises(ValidationError) as failure:
        row(**{**good, field: value})
    assert [(e["loc"], e["type"]) for e in failure.value.errors()] == [((field,), error)]


def test_violations_count_logged_rows_per_input_column() -> None:
    log = good_frame().drop(columns="label").assign(prediction="cat", size=[1.0, 20.0, 30.0])
    assert CONTRACT.violations(log) == {"size": 2}
    assert CONTRACT.violations(good_frame()) == {}


def test_a_contract_is_loaded_by_name_and_bad_names_are_refused() -> None:
    assert load_contract(f"{__name__}:CONTRACT") is CONTRACT
    for spec, message in (
        ("nowhere", "name it as module:attribute"),
        ("no_such_module:X", "cannot be imported"),
        (f"{__name__}:Table", "not a Contract"),
    ):
        with pytest.raises(SchemaError, match=message):
            load_contract(spec)
    with pytest.raises(SchemaError, match="target 'kind' is not one of its columns"):
        Contract(Table, target="kind").features  # noqa: B018
