"""paved_ml.config and paved_ml.data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from paved_ml.config import find_root, load_config
from paved_ml.data import file_md5
from paved_ml.errors import ConfigError

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


def test_file_md5_is_the_content_md5(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    payload = bytes(range(256)) * 9000  # larger than one read block
    path.write_bytes(payload)
    assert file_md5(path) == hashlib.md5(payload).hexdigest()
