"""Project tier, every model framework besides the default (test_project.py is scikit-learn's):
a generated repo passes its checks, trains and promotes a champion through the registry,
serves it (labels and probabilities) and scores a file with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from ci.golden_path import DEMO_ANSWERS, IRIS_ROW, generate, run, serve, tool_env

pytestmark = pytest.mark.project

FRAMEWORKS = ["xgboost"]
LABELS = {"setosa", "versicolor", "virginica"}


@pytest.fixture(scope="module", params=FRAMEWORKS)
def trained(
    request: pytest.FixtureRequest,
    platform: tuple[Path, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, dict[str, str], str]]:
    """A repo of the framework, synced, its pipeline run once."""
    clone, _ = platform
    work = tmp_path_factory.mktemp(request.param)
    env = tool_env(clone)
    answers = {
        **DEMO_ANSWERS,
        "model_framework": request.param,
        "dvc_remote_url": str(work / "dvc-remote"),
    }
    repo = generate(work / "iris-demo", env, answers)
    run(["uv", "sync", "--frozen"], repo, env)
    out = run(["uv", "run", "--frozen", "dvc", "repro"], repo, env)
    yield repo, env, out.stdout + out.stderr


def test_the_repo_passes_its_checks(trained: tuple[Path, dict[str, str], str]) -> None:
    repo, env, _ = trained
    steps = ["standard", "lint", "format", "types", "tests"]
    only = [arg for step in steps for arg in ("--only", step)]
    out = run(["uv", "run", "--frozen", "paved", "ci", "verify", *only], repo, env)
    for step in steps:
        assert f"ok {step} (" in out.stderr, out.stderr[-3000:]


def test_the_pipeline_registers_and_promotes_a_champion(
    trained: tuple[Path, dict[str, str], str],
) -> None:
    repo, _, output = trained
    assert "promoted iris-demo v1" in output and "to 'champion'" in output
    metrics = json.loads((repo / "metrics.json").read_text())
    assert metrics["f1_macro"] > 0.85
    assert "skops_trusted_types" in (repo / "models" / "champion" / "MLmodel").read_text()


def test_the_service_answers_labels_and_probabilities(
    trained: tuple[Path, dict[str, str], str],
) -> None:
    repo, env, _ = trained
    with serve(repo, env) as service:
        status, body = service.post("/predict", {"rows": [IRIS_ROW]})
        assert status == 200, body
        [label] = body["predictions"]
        [probabilities] = body["probabilities"]
        assert label in LABELS and set(probabilities) == LABELS
        assert max(probabilities, key=probabilities.get) == label
        status, body = service.post("/predict", {"rows": [{**IRIS_ROW, "petal_width_cm": "x"}]})
        assert status == 400


def test_batch_scoring_writes_labels_with_the_model_version(
    trained: tuple[Path, dict[str, str], str],
) -> None:
    repo, env, _ = trained
    batch = repo / "data" / "batch"
    batch.mkdir(parents=True)
    pd.DataFrame([IRIS_ROW] * 30).to_csv(batch / "today.csv", index=False)
    run(["uv", "run", "--frozen", "paved-ml", "batch-predict", "data/batch"], repo, env)
    scored = pd.read_parquet(repo / "data" / "scored" / "predictions.parquet", engine="fastparquet")
    assert len(scored) == 30 and set(scored["prediction"]) <= LABELS
    assert set(scored["model_version"]) == {"1"}
    assert {f"probability_{label}" for label in LABELS} <= set(scored.columns)
