"""Fixtures for paved-ml: a team-repo-shaped folder with a real MLflow sqlite store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_iris

PYPROJECT = """\
[project]
name = "lib-test"
version = "0"

[tool.paved]
team = "ml-platform"
project = "lib-test"
model-name = "lib-test-model"
"""


@pytest.fixture(autouse=True)
def _store_left_as_found() -> Iterator[None]:
    """`mlflow.set_tracking_uri` also sets MLFLOW_TRACKING_URI in os.environ: put it back,
    or every later test (and the repos the other tiers generate) would share this store."""
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {name: os.environ.get(name) for name in names}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty team repo: pyproject with [tool.paved], answers file, cwd inside it."""
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / ".copier-answers.yml").write_text("_commit: v9.8.7\n_src_path: x\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def iris() -> pd.DataFrame:
    frame = load_iris(as_frame=True).frame
    frame.columns = ["sl", "sw", "pl", "pw", "species"]
    return frame
