"""Fixtures for paved-ml: a team-repo-shaped folder with a real MLflow sqlite store."""

from __future__ import annotations

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
