"""scikit-learn's per-call input checks, made cheap for a plain numpy array.

On every `predict`, `predict_proba` and `transform`, scikit-learn 1.9 asks narwhals whether
its input is a dataframe or a series: twice per check, and a pipeline checks at every step.
narwhals answers by probing the object with `inspect.getattr_static` for each library it
knows and then asking each installed plugin. For the one-row numpy array the service
hands a fitted pipeline, those probes were a third of the model call (measured on the
template's scaler and logistic regression: ~110 of ~300 µs).

A plain `numpy.ndarray` is neither a dataframe nor a series to any of those probes, so
`install` puts a test for exactly that type in front of narwhals' two questions; every other
object (numpy subclasses included) is asked as before, and gets the same answer as before.
It is installed only where scikit-learn asks narwhals (1.9 on), and only once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["install"]

_QUESTIONS = ("is_into_dataframe", "is_into_series")


class _PlainArrayIsNot:
    """`question(x)`, answered False at once when `x` is exactly a numpy ndarray."""

    def __init__(self, question: Callable[[Any], bool]) -> None:
        self.question = question

    def __call__(self, obj: Any) -> bool:
        if type(obj) is np.ndarray:
            return False
        return self.question(obj)


def install() -> bool:
    """Short-cut narwhals' two questions for plain arrays; False where scikit-learn asks none."""
    try:
        from sklearn.utils import validation
    except ImportError:
        return False
    if not hasattr(validation, "_nw_into_df_or_series"):  # scikit-learn before narwhals
        return False
    dependencies = validation.nw.dependencies
    for name in _QUESTIONS:
        question = getattr(dependencies, name)
        if not isinstance(question, _PlainArrayIsNot):  # not twice
            setattr(dependencies, name, _PlainArrayIsNot(question))
    return True
