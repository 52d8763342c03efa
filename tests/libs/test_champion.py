"""paved_ml.champion: a champion folder read and loaded without MLflow (the service image has
none), as MLflow itself would load it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.models import infer_signature
from paved_ml.champion import load_model, read_mlmodel
from paved_ml.errors import PavedMLError

from tests.lib.helpers import fit

pytestmark = pytest.mark.libs

FEATURES = ["sl", "sw", "pl", "pw"]


@pytest.fixture(scope="module", params=["skops", "cloudpickle", "pickle"])
def saved(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, iris: pd.DataFrame
) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp(request.param) / "champion"
    model = fit(iris, 1.0)
    mlflow.sklearn.save_model(
        model,
        path,
        signature=infer_signature(iris[FEATURES], model.predict(iris[FEATURES])),
        serialization_format=request.param,
    )
    return path, model


def test_each_format_loads_as_mlflow_loads_it(
    saved: tuple[Path, object], iris: pd.DataFrame
) -> None:
    path, model = saved
    ours, theirs = load_model(path), mlflow.sklearn.load_model(str(path))
    rows = iris[FEATURES].iloc[::7]
    assert type(ours) is type(theirs) is type(model)
    assert np.array_equal(ours.predict_proba(rows), theirs.predict_proba(rows))


def test_loading_never_imports_mlflow(saved: tuple[Path, object]) -> None:
    path, _ = saved
    code = (
        "import sys; from pathlib import Path; from paved_ml.champion import load_model; "
        f"model = load_model(Path({str(path)!r})); "
        "print(type(model).__name__, 'mlflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["LogisticRegression", "False"], done.stderr


def test_mlflow_s_switch_against_loading_pickles_is_honoured(
    saved: tuple[Path, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = saved
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with pytest.raises(PavedMLError, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION is false"):
        load_model(path)


def test_a_folder_without_a_model_or_with_a_broken_one_says_so(tmp_path: Path) -> None:
    with pytest.raises(PavedMLError, match=r"no champion model in .*run `dvc pull`"):
        read_mlmodel(tmp_path)
    (tmp_path / "MLmodel").write_text("flavors: [unclosed\n")
    with pytest.raises(PavedMLError, match="is not valid YAML"):
        read_mlmodel(tmp_path)
    (tmp_path / "MLmodel").write_text(
        yaml.safe_dump(
            {"flavors": {"sklearn": {"pickled_model": "m", "serialization_format": "x"}}}
        )
    )
    with pytest.raises(PavedMLError, match="unknown serialization format 'x'"):
        load_model(tmp_path)


def test_another_flavour_goes_through_mlflow_s_pyfunc(tmp_path: Path) -> None:
    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(
            self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
        ) -> pd.DataFrame:
            return model_input * 2

    mlflow.pyfunc.save_model(tmp_path / "m", python_model=Doubler())
    assert "sklearn" not in json.dumps(read_mlmodel(tmp_path / "m")["flavors"])
    model = load_model(tmp_path / "m")
    assert model.predict(pd.DataFrame({"x": [1.5]}))["x"].tolist() == [3.0]
