"""Constants and types shared by the test tiers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

RELEASE = "v0.1.0"
BASE_ANSWERS = {"project_name": "Iris Demo", "team": "data-science"}
Render = Callable[..., Path]


def fit(iris: Any, c: float) -> Any:
    """A logistic regression on the iris frame of tests/libs (columns sl, sw, pl, pw)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=500).fit(iris[["sl", "sw", "pl", "pw"]], iris.species)
