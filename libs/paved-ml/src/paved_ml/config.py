"""The project's settings, read from `[tool.paved]` in its pyproject.toml.

A team repo says who it is once (team, project, model name, tracking URI) and every
module here reads it from the same place, so pipeline stages and the service stay short.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from paved_ml.errors import ConfigError, PavedMLError

__all__ = ["ProjectConfig", "find_root", "load_config"]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ANSWERS_FILE = ".copier-answers.yml"


@dataclass(frozen=True, kw_only=True)
class ProjectConfig:
    """Who a team repo is and where it tracks its runs."""

    root: Path
    team: str
    project: str
    model_name: str
    tracking_uri: str
    platform_version: str
    #: The data contract as `module:attribute` (paved_ml.contract.load_contract), if named.
    contract: str = ""

    @property
    def champion_dir(self) -> Path:
        """Where the champion model lives as a DVC-tracked artifact."""
        from paved_ml.champion import DEFAULT_DIR  # which reads its YAML through this module

        return self.root / DEFAULT_DIR


def find_root(start: Path | None = None) -> Path:
    """Return the nearest folder at or above `start` whose pyproject.toml has [tool.paved]."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and "paved" in _tool_tables(_read_toml(candidate)):
            return folder
    raise ConfigError(f"no pyproject.toml with a [tool.paved] table at or above {here}")


def load_config(root: Path | None = None) -> ProjectConfig:
    """Read [tool.paved]; MLFLOW_TRACKING_URI in the environment wins over the file."""
    root = find_root(root)
    table = _tool_tables(_read_toml(root / "pyproject.toml"))["paved"]
    missing = [key for key in ("team", "project", "model-name") if not table.get(key)]
    if missing:
        raise ConfigError(f"[tool.paved] in {root / 'pyproject.toml'} lacks: {', '.join(missing)}")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or table.get("tracking-uri") or DEFAULT_TRACKING_URI
    return ProjectConfig(
        root=root,
        team=str(table["team"]),
        project=str(table["project"]),
        model_name=str(table["model-name"]),
        tracking_uri=_anchor_sqlite(uri, root),
        platform_version=_platform_version(root),
        contract=str(table.get("contract", "")),
    )


def read_yaml_mapping(path: Path, *, holds: str = "sections") -> dict[str, Any]:
    """The mapping a YAML file holds (empty for an empty file).

    A file that is not YAML, or holds something else than a mapping, is a PavedMLError
    naming it (`holds` says what it should hold).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PavedMLError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PavedMLError(f"{path} holds no {holds}")
    return data


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def _tool_tables(document: dict[str, Any]) -> dict[str, Any]:
    tool = document.get("tool", {})
    return tool if isinstance(tool, dict) else {}


def _anchor_sqlite(uri: str, root: Path) -> str:
    """Make a relative sqlite URI relative to the repo root, not to the working directory."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(root / uri.removeprefix(prefix))
    return uri


def _platform_version(root: Path) -> str:
    """The platform release that rendered the repo, as copier recorded it."""
    answers = root / ANSWERS_FILE
    if not answers.is_file():
        return "unknown"
    data = yaml.safe_load(answers.read_text(encoding="utf-8")) or {}
    return str(data.get("_commit", "unknown"))
