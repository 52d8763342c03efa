"""paved_ml._sklearn_fix: narwhals' dataframe questions answered at once for plain arrays."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from paved_ml import _sklearn_fix
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import validation

pytestmark = pytest.mark.libs

FEATURES = ["sl", "sw", "pl", "pw"]


class Subclass(np.ndarray):  # type: ignore[type-arg]
    """A numpy subclass: not a plain array, so narwhals is asked about it as before."""


def questions() -> tuple[Any, Any]:
    dependencies = validation.nw.dependencies
    return dependencies.is_into_dataframe, dependencies.is_into_series


def test_installed_once_in_front_of_narwhals() -> None:
    assert _sklearn_fix.install()
    first = questions()
    assert _sklearn_fix.install()
    assert questions() == first  # not wrapped twice
    for question in first:
        assert isinstance(question, _sklearn_fix._PlainArrayIsNot)
        assert not isinstance(question.question, _sklearn_fix._PlainArrayIsNot)


def test_a_plain_array_is_answered_without_asking_and_the_rest_as_before() -> None:
    asked: list[Any] = []

    def narwhals(obj: Any) -> bool:
        asked.append(obj)
        return isinstance(obj, pd.DataFrame)

    shortcut = _sklearn_fix._PlainArrayIsNot(narwhals)
    array = np.zeros((1, 4))
    assert shortcut(array) is False and asked == []
    frame, matrix = pd.DataFrame(array), array.view(Subclass)  # a subclass is asked too
    assert shortcut(frame) is True and shortcut(matrix) is False
    assert asked == [frame, matrix]


def test_answers_and_feature_name_checks_are_unchanged(iris: pd.DataFrame) -> None:
    _sklearn_fix.install()
    is_into_dataframe, is_into_series = questions()
    original_frame, original_series = is_into_dataframe.question, is_into_series.question
    frame = iris[FEATURES]
    for obj in (frame.to_numpy(), frame, frame["sl"], frame.to_numpy().view(Subclass), [1.0]):
        assert is_into_dataframe(obj) == original_frame(obj)
        assert is_into_series(obj) == original_series(obj)

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(frame, iris.species)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fitted with names, asked without
        from_array = model.predict_proba(frame.to_numpy())
    np.testing.assert_array_equal(from_array, model.predict_proba(frame))
    # A frame is still read as a frame: its column names are still checked.
    with pytest.raises(ValueError, match="feature names"):
        model.predict_proba(frame.rename(columns={"sl": "sepal"}))
