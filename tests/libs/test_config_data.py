"""paved_ml.config and paved_ml.data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from paved_ml.config import find_root, load_config
from paved_ml.data import Schema, file_md5
from paved_ml.errors import ConfigError, SchemaError

pytestmark = pytest.mark.libs


def test_config_reads_tool_paved_from_any_subfolder(project: Path) -> None:
    sub = project / "src" / "deep"
    sub.mkdir(parents=True)
    config = load_config(sub)
    assert config.root == project
    assert (config.team, config.project, config.model_name) == (
        "ml-platform",
        "lib-test",
        "lib-test-model",
    )
    assert config.platform_version == "v9.8.7"
    # The embedded store is anchored at the repo root, whatever the working directory.
    assert config.tracking_uri == f"sqlite:///{project}/mlflow.db"
    assert config.champion_dir == project / "models" / "champion"


def test_environment_tracking_uri_wins(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert load_config().tracking_uri == "http://127.0.0.1:5000"


def test_missing_settings_are_named(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.paved]\nteam = "x"\n')
    with pytest.raises(ConfigError, match="lacks: project, model-name"):
        load_config()


def test_no_paved_table_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"no pyproject.toml with a \[tool.paved\]"):
        find_root(tmp_path)


SCHEMA = {
    "target": "label",
    "columns": {
        "size": {"dtype": "float", "min": 0, "max": 10},
        "count": {"dtype": "int", "nullable": True},
        "colour": {"dtype": "str", "allowed": ["red", "blue"]},
        "label": {"dtype": "int", "allowed": [0, 1]},
    },
}


def good_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "size": [1.0, 2.5, 9.0],
            "count": [1, None, 3],
            "colour": ["red", "blue", "red"],
            "label": [0, 1, 0],
        }
    )


def test_valid_frame_passes_in_schema_order() -> None:
    schema = Schema.from_dict(SCHEMA)
    frame = good_frame()[["label", "colour", "size", "count"]]
    assert list(schema.validate(frame).columns) == ["size", "count", "colour", "label"]
    assert schema.features == ["size", "count", "colour"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="colour"), "missing column 'colour'"),
        (lambda f: f.assign(extra=1), "unexpected column 'extra'"),
        (lambda f: f.assign(size=["a", "b", "c"]), "column 'size': expected float"),
        (lambda f: f.assign(size=[1.0, np.nan, 2.0]), "column 'size': empty values in rows 1"),
        (lambda f: f.assign(size=[-1.0, 2.0, 11.0]), "column 'size': values below 0 in rows 0"),
        (lambda f: f.assign(size=[-1.0, 2.0, 11.0]), "column 'size': values above 10 in rows 2"),
        (
            lambda f: f.assign(colour=["red", "green", "pink"]),
            "outside ['red', 'blue'] in rows 1, 2",
        ),
        (lambda f: f.iloc[0:0], "the table has no rows"),
        (lambda f: f.assign(count=[1.5, None, 3.0]), "column 'count': expected int"),
    ],
)
def test_every_problem_is_named(change, message: str) -> None:
    with pytest.raises(SchemaError) as failure:
        Schema.from_dict(SCHEMA).validate(change(good_frame()))
    assert message in str(failure.value)


def test_many_bad_rows_are_summarised() -> None:
    frame = pd.DataFrame(
        {"size": [-1.0] * 8, "count": [1] * 8, "colour": ["red"] * 8, "label": [0] * 8}
    )
    with pytest.raises(SchemaError, match=r"rows 0, 1, 2, 3, 4 \(\+3 more\)"):
        Schema.from_dict(SCHEMA).validate(frame)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"columns": {"a": {"dtype": "int"}}}, "needs 'target' and 'columns'"),
        (
            {"target": "b", "columns": {"a": {"dtype": "int"}}},
            "target 'b' is not one of its columns",
        ),
        ({"target": "a", "columns": {"a": {"dtype": "decimal"}}}, "unknown dtype 'decimal'"),
    ],
)
def test_bad_schemas_are_refused(data: dict, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        Schema.from_dict(data)


def test_file_md5_is_the_content_md5(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    payload = bytes(range(256)) * 9000  # larger than one read block
    path.write_bytes(payload)
    assert file_md5(path) == hashlib.md5(payload).hexdigest()
