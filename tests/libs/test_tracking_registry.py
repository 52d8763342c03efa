"""paved_ml.tracking and paved_ml.registry against a real MLflow sqlite store."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from paved_ml.champion import read_champion_file
from paved_ml.config import load_config
from paved_ml.data import file_md5
from paved_ml.errors import RegistryError
from paved_ml.registry import (
    Decision,
    SameTestSet,
    champion,
    decision_record,
    export_champion,
    load_registered_champion,
    promote_if_better,
    register,
    save_champion,
)
from paved_ml.tracking import lineage_run, pinned_requirements, use_tracking
from sklearn.metrics import f1_score

from tests.lib.helpers import fit

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


def test_tracking_leaves_the_environment_as_it_found_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config()
    with lineage_run(config):
        assert mlflow.get_tracking_uri() == config.tracking_uri
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    # A store the caller named stays named, for the processes this one starts.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:///registry.db")
    use_tracking(config)
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///elsewhere.db"
    assert os.environ["MLFLOW_REGISTRY_URI"] == "sqlite:///registry.db"


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


def todays_test_set(project: Path, iris: pd.DataFrame) -> SameTestSet:
    """Today's test set (all of iris, as a file with its md5) and the f1 a model scores on it."""
    path = project / "test.csv"
    iris.to_csv(path, index=False)

    def score(uri: str) -> float:
        predicted = mlflow.sklearn.load_model(uri).predict(iris[["sl", "sw", "pl", "pw"]])
        return float(f1_score(iris.species, predicted, average="macro"))

    return SameTestSet(md5=file_md5(path), score=score)


def test_the_fair_gate_scores_the_champion_on_the_challengers_test_set(
    project: Path, iris: pd.DataFrame
) -> None:
    """A champion that looks better only because its old test set was easier loses."""
    config = load_config()
    weak, _ = log_version(project, iris, 0.001, 0.99)  # 0.99 on an easy test set of its day
    promote_if_better(config, weak, metric="f1", value=0.99)
    strong, strong_run = log_version(project, iris, 1.0, 0.0)
    today = todays_test_set(project, iris)
    challenger = today.score(f"models:/lib-test-model/{strong}")
    assert 0.95 < challenger < 0.99, "the challenger is better today, yet under the old figure"

    unfair = promote_if_better(config, strong, metric="f1", value=challenger)
    assert not unfair.promoted and unfair.champion_value == 0.99, "the old gate keeps it"
    assert unfair.basis == "training_run" and unfair.fallback is None

    fair = promote_if_better(config, strong, metric="f1", value=challenger, same_test_set=today)
    assert fair.promoted and fair.reason == "better" and str(champion(config).version) == strong
    assert fair.basis == "same_test_set" and fair.test_set_md5 == today.md5
    assert fair.champion_value is not None and fair.champion_value < 0.75  # weak, today
    assert fair.champion_logged_value == 0.99
    assert fair.message == (
        f"promoted lib-test-model v{strong} (f1={challenger:.4f}) to 'champion': it beats "
        f"v{weak} (f1={fair.champion_value:.4f}) (both scored on the same test set, "
        f"md5 {today.md5})"
    )
    # Both scores, the test set's hash and the verdict are on the challenger's run.
    logged = MlflowClient().get_run(strong_run).data
    assert logged.metrics["paved.gate.challenger.f1"] == pytest.approx(challenger)
    assert logged.metrics["paved.gate.champion.f1"] == pytest.approx(fair.champion_value)
    assert logged.metrics["paved.gate.champion_logged.f1"] == 0.99
    assert logged.tags["paved.gate.test_set_md5"] == today.md5
    assert logged.tags["paved.gate.basis"] == "same_test_set"
    assert logged.tags["paved.gate.reason"] == "better"
    assert logged.tags["paved.gate.promoted"] == "true"
    assert decision_record(fair)["champion_logged_value"] == 0.99

    # The same test set judges the next challenger against the new champion's real score.
    worse, _ = log_version(project, iris, 0.01, 0.0)
    kept = promote_if_better(
        config,
        worse,
        metric="f1",
        value=today.score(f"models:/lib-test-model/{worse}"),
        same_test_set=today,
    )
    assert not kept.promoted and kept.champion_value == pytest.approx(challenger)


def test_a_champion_that_cannot_be_loaded_is_judged_by_its_logged_figure(
    project: Path, iris: pd.DataFrame
) -> None:
    config = load_config()
    old, _ = log_version(project, iris, 0.001, 0.99)
    promote_if_better(config, old, metric="f1", value=0.99)
    stored = [found.parent for found in (project / "mlruns").rglob("MLmodel")]
    assert stored, "the store keeps the champion's model under mlruns/"
    for folder in stored:
        shutil.rmtree(folder)  # every stored copy of its model is gone
    new, new_run = log_version(project, iris, 1.0, 0.0)
    today = todays_test_set(project, iris)
    decision = promote_if_better(config, new, metric="f1", value=0.97, same_test_set=today)
    assert not decision.promoted and decision.reason == "not_better"
    assert decision.basis == "training_run" and decision.champion_value == 0.99
    assert decision.fallback is not None
    assert decision.message.startswith(
        f"kept champion v{old} (f1=0.9900): challenger lib-test-model v{new} (f1=0.9700) does "
        f"not beat it (the champion's figure is from its own training run: it could not be "
        f"scored on this test set, md5 {today.md5}: "
    )
    tags = MlflowClient().get_run(new_run).data.tags
    assert tags["paved.gate.basis"] == "training_run" and tags["paved.gate.fallback"]
    assert "paved.gate.champion.f1" in MlflowClient().get_run(new_run).data.metrics


def test_deployed_versions_get_the_environments_aliases_and_champion_stays(
    project: Path, iris: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    """`paved-ml deployed` reads `paved deploy status --json` and moves staging/production."""
    from paved_ml.cli import main

    config = load_config()
    v1, _ = log_version(project, iris, 0.01, 0.80)
    promote_if_better(config, v1, metric="f1", value=0.80)
    v2, _ = log_version(project, iris, 1.0, 0.95)
    status = project / "status.json"

    def rows(staging: str, production: str) -> str:
        model = {"model_name": "lib-test-model"}
        return json.dumps(
            [
                {"environment": "staging", **model, "model_version": staging},
                {"environment": "production", **model, "model_version": production, "note": "-"},
            ]
        )

    status.write_text(rows(v2, ""))
    assert main(["deployed", str(status)]) == 0
    out = capsys.readouterr().out
    assert "staging: lib-test-model v2 (was unset)" in out
    assert "production: no model version known (-)" in out
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("lib-test-model", "staging").version) == "2"
    status.write_text(rows(v1, v2))
    assert main(["deployed", str(status)]) == 0
    assert "staging: lib-test-model v1 (was v2)" in capsys.readouterr().out
    assert str(client.get_model_version_by_alias("lib-test-model", "production").version) == "2"
    assert str(champion(config).version) == "1", "deploys never move the champion"

    status.write_text(rows("9", ""))
    assert main(["deployed", str(status)]) == 2
    assert "lib-test-model v9 is not in the registry" in capsys.readouterr().err
    assert main(["deployed", "--shared-only", str(status)]) == 0  # this registry is a file
    assert "nothing shared to record in" in capsys.readouterr().out
    status.write_text("not json")
    assert main(["deployed", str(status)]) == 2
    assert "not the JSON of `paved deploy status --json`" in capsys.readouterr().err


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
    by_alias = load_registered_champion(config)
    assert list(by_alias.predict(iris[["sl", "sw", "pl", "pw"]].tail(2))) == [2, 2]


def test_refusals(project: Path, iris: pd.DataFrame) -> None:
    config = load_config()
    with pytest.raises(RegistryError, match="has no 'champion'"):
        export_champion(config, project / "out")
    with pytest.raises(RegistryError, match="has no 'champion'"):
        load_registered_champion(config)
    version, _ = log_version(project, iris, 1.0, 0.9)
    promote_if_better(config, version, metric="f1", value=0.9)
    v2, _ = log_version(project, iris, 1.0, 0.1)
    lost = promote_if_better(config, v2, metric="f1", value=0.1)
    with pytest.raises(RegistryError, match="was not promoted"):
        save_champion(project, project / "champion", lost)
    with pytest.raises(ValueError, match="not-a-package is not installed"):
        pinned_requirements("not-a-package")


def test_a_champion_without_the_metric_is_kept(project: Path, iris: pd.DataFrame) -> None:
    config = load_config()
    v1, _ = log_version(project, iris, 1.0, 0.5)  # its run has f1, not accuracy
    assert promote_if_better(config, v1, metric="f1", value=0.5).promoted
    v2, _ = log_version(project, iris, 1.0, 0.9)
    kept = promote_if_better(config, v2, metric="accuracy", value=0.9)
    assert not kept.promoted and kept.reason == "champion_metric_missing"
    assert kept.champion_version == v1 and kept.champion_value is None
    assert kept.message == (
        "kept champion v1: its run has no metric 'accuracy' to compare challenger "
        "lib-test-model v2 (accuracy=0.9000) with; promote by hand with "
        "MlflowClient().set_registered_model_alias('lib-test-model', 'champion', '2') "
        "if intended"
    )
    assert str(champion(config).version) == v1


def test_metrics_that_are_not_numbers(project: Path, iris: pd.DataFrame) -> None:
    config = load_config()
    v1, _ = log_version(project, iris, 1.0, math.nan)
    for value in (math.nan, None, math.inf):
        refused = promote_if_better(config, v1, metric="f1", value=value)
        assert not refused.promoted and refused.reason == "challenger_not_a_number"
    assert champion(config) is None, "a challenger that is not a number never takes the alias"
    assert refused.message == "did not promote lib-test-model v1: its f1 is not finite (inf)"
    assert (
        promote_if_better(config, v1, metric="f1", value=None).message
        == "did not promote lib-test-model v1: its f1 is not a number (n/a)"
    )

    # Its run's f1 is NaN: made champion by hand, a finite challenger replaces it.
    MlflowClient().set_registered_model_alias("lib-test-model", "champion", v1)
    v2, _ = log_version(project, iris, 1.0, 0.6)
    replaced = promote_if_better(config, v2, metric="f1", value=0.6)
    assert replaced.promoted and replaced.reason == "champion_not_a_number"
    assert replaced.champion_version == v1 and replaced.champion_value is not None
    assert math.isnan(replaced.champion_value)
    assert replaced.message == (
        "promoted lib-test-model v2 (f1=0.6000) to 'champion': champion v1's f1 is not a "
        "number (nan), so the finite challenger replaces it"
    )
    assert str(champion(config).version) == v2
    record = decision_record(replaced)
    assert record["champion_value"] is None and record["reason"] == "champion_not_a_number"
    json.dumps(record, allow_nan=False)  # JSON-ready: no NaN literal

    v3, _ = log_version(project, iris, 1.0, 0.9)
    nan = promote_if_better(config, v3, metric="f1", value=math.nan)
    assert not nan.promoted and nan.reason == "challenger_not_a_number"
    assert nan.message == (
        "kept champion v2 (f1=0.6000): challenger lib-test-model v3's f1 is not a number (nan)"
    )
    assert decision_record(nan)["value"] is None
    json.dumps(decision_record(nan), allow_nan=False)
    assert str(champion(config).version) == v2


def test_concurrent_promotions_settle_on_the_better(
    project: Path, iris: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two promotions racing on one store: the alias ends on the better, and both agree.

    In the first round a slow network is played by holding back the real alias writes: the
    better one lands only once the worse writer has read the alias, and the worse one right
    after it (a last-writer-wins race the worse would win unchecked). The second round races
    with no help at all.
    """
    config = load_config()
    rigged: dict[str, str] = {}
    worse_read, better_wrote = threading.Event(), threading.Event()
    real_set = MlflowClient.set_registered_model_alias

    def held_back_set(self: MlflowClient, name: str, alias: str, version: str) -> None:
        role = rigged.pop(str(version), None)
        if role == "worse":
            worse_read.set()
            assert better_wrote.wait(10), "the better writer never wrote"
        if role == "better":
            assert worse_read.wait(10), "the worse writer never got to write"
        real_set(self, name, alias, version)
        if role == "better":
            better_wrote.set()

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", held_back_set)
    previous = None
    for worse_score, better_score, race in ((0.70, 0.80, "rigged"), (0.85, 0.90, "free")):
        worse, _ = log_version(project, iris, 1.0, worse_score)
        better, _ = log_version(project, iris, 1.0, better_score)
        if race == "rigged":
            rigged.update({worse: "worse", better: "better"})
        barrier = threading.Barrier(2)

        def promote(version: str, score: float, barrier: threading.Barrier = barrier) -> Decision:
            barrier.wait()
            return promote_if_better(config, version, metric="f1", value=score)

        with ThreadPoolExecutor(2) as pool:
            lost = pool.submit(promote, worse, worse_score)
            won = pool.submit(promote, better, better_score)
            w, b = lost.result(), won.result()
        assert not rigged, "both writers set the alias"
        assert str(champion(config).version) == better, race
        assert b.promoted
        if w.promoted:  # the worse held the alias first, then the better beat it
            assert w.champion_version == previous and b.champion_version == worse
        else:  # the worse compared against the better and yielded
            assert w.champion_version == better and w.reason == "not_better"
            assert b.champion_version in {previous, worse}
        previous = better


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_replacing_the_champion_folder_keeps_the_old_until_the_new_is_whole(
    project: Path, iris: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config()
    models = config.champion_dir.parent
    v1, _ = log_version(project, iris, 1.0, 0.5)
    first = promote_if_better(config, v1, metric="f1", value=0.5, settle=0.0)
    candidate = project / "candidate"
    mlflow.sklearn.save_model(fit(iris, 1.0), candidate)
    save_champion(candidate, config.champion_dir, first)
    (config.champion_dir / "stale.txt").write_text("from an older champion")
    export_champion(config, config.champion_dir)  # a replacement that succeeds
    assert not (config.champion_dir / "stale.txt").exists()
    assert sorted(p.name for p in models.iterdir()) == ["champion"]
    before = tree(config.champion_dir)
    assert read_champion_file(config.champion_dir)["version"] == v1

    v2, _ = log_version(project, iris, 0.01, 0.9)
    second = promote_if_better(config, v2, metric="f1", value=0.9, settle=0.0)
    real_copytree = shutil.copytree

    def copy_then_fail(src: Any, dst: Any, **kwargs: Any) -> Any:
        """Copy for real, but the disk fills up after two files."""
        copied: list[str] = []

        def copy(source: str, target: str) -> None:
            if len(copied) == 2:
                raise OSError("No space left on device")
            copied.append(shutil.copy2(source, target))

        return real_copytree(src, dst, **{**kwargs, "copy_function": copy})

    with monkeypatch.context() as patch, pytest.raises(shutil.Error, match="No space left"):
        patch.setattr(shutil, "copytree", copy_then_fail)
        save_champion(candidate, config.champion_dir, second)
    assert tree(config.champion_dir) == before
    assert sorted(p.name for p in models.iterdir()) == ["champion"]

    # An export whose download comes back without its MLmodel leaves the old one too.
    source = MlflowClient().get_model_version("lib-test-model", v2).source
    artifacts = mlflow.get_logged_model(source.removeprefix("models:/")).artifact_location
    (Path(artifacts.removeprefix("file://")) / "MLmodel").unlink()
    with pytest.raises(RegistryError, match="without an MLmodel"):
        export_champion(config, config.champion_dir)
    assert tree(config.champion_dir) == before
    assert sorted(p.name for p in models.iterdir()) == ["champion"]
