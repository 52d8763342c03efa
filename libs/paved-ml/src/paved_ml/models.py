"""Estimators the template's frameworks share: any classifier made to learn the data's labels.

XGBoost's scikit-learn classifier learns only the labels 0..n-1. `LabelledClassifier`
encodes whatever labels the data uses (names, say) for the estimator it wraps and decodes
its predictions, so the champion predicts, and the service answers, the data's own labels;
`classes_` and `predict_proba` follow the same order.

`likeliest` is how the service and batch scoring label a classifier's rows: one
`predict_proba` call, each row's label the likeliest of its probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.preprocessing import LabelEncoder

__all__ = ["LabelledClassifier", "likeliest"]


def likeliest(model: Any, inputs: Any) -> tuple[Any, Any]:
    """(each row's likeliest label, the probabilities) from one `predict_proba` call.

    One model call instead of `predict` then `predict_proba`: scikit-learn's per-call input
    checks cost far more than a small model's arithmetic. The label is the one the returned
    probabilities rank first (`classes_` order breaks ties, as `predict` does), so an answer
    never names a label that its own probabilities rank below another.
    """
    probabilities = model.predict_proba(inputs)
    return np.asarray(model.classes_)[probabilities.argmax(axis=1)], probabilities


class LabelledClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """`estimator`, fitted on the labels encoded as 0..n-1, predicting the labels themselves."""

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any) -> LabelledClassifier:
        """Fit a clone of the estimator on `X` and the encoded labels of `y`."""
        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        self.estimator_ = clone(self.estimator).fit(X, self.encoder_.transform(y))
        return self

    def predict(self, X: Any) -> Any:
        """The predicted labels (the data's own)."""
        return self.encoder_.inverse_transform(self.estimator_.predict(X))

    def predict_proba(self, X: Any) -> Any:
        """Each row's probability per label, in `classes_` order."""
        return self.estimator_.predict_proba(X)
