"""paved_ml.tracking and paved_ml.registry against a real MLflow sqlite store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from helpers import fit
from mlflow.models import infer_signature
from paved_ml.config import load_config
from paved_ml.data import file_md5
from paved_ml.errors import RegistryError
from paved_ml.registry import (
    champion,
    decision_record,
    export_champion,
    load_champion,
    promote_if_better,
    read_champion_file,
    register,
    save_champion,
)
from paved_ml.tracking import lineage_run, pinned_requirements

pytestmark = pytest.mark.libs


def log_version(project: Path, iris: pd.DataFrame, c: float, score: float) -> tuple[str, str]:
    """Train, log and register a model version whose run carries `score`: (version, run)."""
    config = load_config()
    model = fit(iris, c)
    features = iris[["sl", "sw", "pl", "pw"]]
    with lineage_run(config, run_name="train") as run:
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(features, model.predict(features)),
            pip_requirements=pinned_requirements("scikit-learn"),
        )
        mlflow.log_metric("f1", score)
    return register(config, info.model_uri), run.info.run_id


def test_runs_carry_lineage_tags(project: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
        cwd=project,
        check=True,
    )
    data = project / "data" / "train.csv"
    data.parent.mkdir()
    data.write_text("a,b\n1,2\n")
    config = load_config()
    with lineage_run(config, run_name="train", inputs=[Path("data/train.csv")]) as run:
        pass
    tags = mlflow.get_run(run.info.run_id).data.tags
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True
    ).stdout.strip()
    assert tags["paved.team"] == "ml-platform"
    assert tags["paved.project"] == "lib-test"
    assert tags["paved.platform_version"] == "v9.8.7"
    assert tags["mlflow.source.git.commit"] == head
    assert tags["paved.git.dirty"] == "false"  # the new data file is untracked, not a change
    assert tags["paved.data.data/train.csv.md5"] == file_md5(data)
    # The embedded store lives at the repo root, artifacts beside it.
    assert (project / "mlflow.db").is_file()
    assert (
        mlflow.get_experiment(run.info.experiment_id).artifact_location
        == (project / "mlruns").as_uri()
    )


def test_outside_git_the_commit_is_unknown(project: Path) -> None:
    with lineage_run(load_config()) as run:
        pass
    assert mlflow.get_run(run.info.run_id).data.tags["mlflow.source.git.commit"] == "unknown"


def test_champion_challenger(project: Path, iris: pd.DataFrame) -> None:
    config = load_config()
    assert champion(config) is None

    v1, _ = log_version(project, iris, 0.01, 0.80)
    first = promote_if_better(config, v1, metric="f1", value=0.80)
    assert first.promoted and first.champion_version is None
    assert (
        first.message
        == "promoted lib-test-model v1 (f1=0.8000) to 'champion': there was no champion"
    )

    v2, _ = log_version(project, iris, 0.001, 0.70)
    worse = promote_if_better(config, v2, metric="f1", value=0.70)
    assert not worse.promoted
    assert worse.message == (
        "kept champion v1 (f1=0.8000): challenger lib-test-model v2 (f1=0.7000) does not beat it"
    )
    assert str(champion(config).version) == "1"

    v3, _ = log_version(project, iris, 0.1, 0.80)
    tie = promote_if_better(config, v3, metric="f1", value=0.80)
    assert not tie.promoted, "a tie keeps the champion"

    v4, _ = log_version(project, iris, 1.0, 0.95)
    better = promote_if_better(config, v4, metric="f1", value=0.95)
    assert better.promoted and better.champion_version == "1" and better.champion_value == 0.80
    assert str(champion(config).version) == "4"
    assert decision_record(better)["message"].endswith("it beats v1 (f1=0.8000)")

    with pytest.raises(RegistryError, match="already the champion"):
        promote_if_better(config, v4, metric="f1", value=0.99)


def test_lower_is_better_metrics(project: Path, iris: pd.DataFrame) -> None:
    config = load_config()
    v1, _ = log_version(project, iris, 1.0, 0.5)
    assert promote_if_better(config, v1, metric="f1", value=0.5, greater_is_better=False).promoted
    v2, _ = log_version(project, iris, 1.0, 0.6)
    assert not promote_if_better(
        config, v2, metric="f1", value=0.6, greater_is_better=False
    ).promoted
    v3, _ = log_version(project, iris, 1.0, 0.4)
    assert promote_if_better(config, v3, metric="f1", value=0.4, greater_is_better=False).promoted


def test_champion_folder_round_trip(project: Path, iris: pd.DataFrame) -> None:
    config = load_config()
    version, _ = log_version(project, iris, 1.0, 0.9)
    decision = promote_if_better(config, version, metric="f1", value=0.9)

    saved = project / "candidate"
    mlflow.sklearn.save_model(fit(iris, 1.0), saved)
    save_champion(saved, config.champion_dir, decision)
    assert read_champion_file(config.champion_dir) == {
        "model_name": "lib-test-model",
        "version": version,
        "metrics": {"f1": 0.9},
    }

    exported = export_champion(config, project / "exported")
    assert (exported / "MLmodel").is_file()
    record = json.loads((exported / "champion.json").read_text())
    assert record["version"] == version and record["metrics"] == {"f1": 0.9}
    loaded = mlflow.sklearn.load_model(str(exported))
    assert list(loaded.predict(iris[["sl", "sw", "pl", "pw"]].head(3))) == [0, 0, 0]
    by_alias = load_champion(config)
    assert list(by_alias.predict(iris[["sl", "sw", "pl", "pw"]].tail(2))) == [2, 2]


def test_refusals(project: Path, iris: pd.DataFrame) -> None:
    config = load_config()
    with pytest.raises(RegistryError, match="has no 'champion'"):
        export_champion(config, project / "out")
    with pytest.raises(RegistryError, match="has no 'champion'"):
        load_champion(config)
    version, _ = log_version(project, iris, 1.0, 0.9)
    promote_if_better(config, version, metric="f1", value=0.9)
    v2, _ = log_version(project, iris, 1.0, 0.1)
    lost = promote_if_better(config, v2, metric="f1", value=0.1)
    with pytest.raises(RegistryError, match="was not promoted"):
        save_champion(project, project / "champion", lost)
    with pytest.raises(ValueError, match="not-a-package is not installed"):
        pinned_requirements("not-a-package")
