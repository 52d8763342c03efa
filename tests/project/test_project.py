"""Project tier: a generated repo installs, passes its own checks, runs its pipeline with the
champion/challenger gate, round-trips through its DVC remote and serves the champion.

Real tools throughout: `paved new` (copier), uv, ruff, pytest, DVC, MLflow's sqlite store and
`bentoml serve` on a free loopback port. The steps build on each other, in file order.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from ci.golden_path import DEMO_ANSWERS, IRIS_ROW, Service, generate, run, serve, tool_env
from tests.lib.helpers import RELEASE, mlflow_server

pytestmark = pytest.mark.project

PACKAGE = "iris_demo"


class Repo:
    """The generated repo and the environment every command in it runs with."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.env = env

    def run(self, *cmd: str, cwd: Path | None = None) -> str:
        result = run(["uv", "run", "--frozen", *cmd], cwd or self.path, self.env)
        return result.stdout + result.stderr

    def python(self, code: str, cwd: Path | None = None) -> Any:
        """Run code in the repo's own environment; it prints one JSON value."""
        result = run(["uv", "run", "--frozen", "python", "-c", code], cwd or self.path, self.env)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def set_param(self, stage: str, key: str, value: Any) -> None:
        params_file = self.path / "params.yaml"
        params = yaml.safe_load(params_file.read_text())
        params[stage][key] = value
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))

    def champion(self) -> dict[str, Any]:
        return self.python(
            "import json; from paved_ml.config import load_config; "
            "from paved_ml.registry import champion; c = champion(load_config()); "
            "print(json.dumps(c and {'version': str(c.version), 'run_id': c.run_id}))"
        )

    def git(self, *args: str, cwd: Path | None = None) -> str:
        return run(["git", *args], cwd or self.path, self.env).stdout.strip()


@pytest.fixture(scope="module")
def repo(platform: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Repo:
    clone, _ = platform
    work = tmp_path_factory.mktemp("project")
    env = tool_env(
        clone,
        GIT_AUTHOR_NAME="Data Scientist",
        GIT_AUTHOR_EMAIL="ds@example.com",
        GIT_COMMITTER_NAME="Data Scientist",
        GIT_COMMITTER_EMAIL="ds@example.com",
    )
    path = generate(
        work / "iris-demo", env, {**DEMO_ANSWERS, "dvc_remote_url": str(work / "dvc-remote")}
    )
    run(["uv", "sync", "--frozen"], path, env)
    return Repo(path, env)


def test_paved_new_commits_the_render_and_lock(repo: Repo) -> None:
    assert repo.git("status", "--porcelain") == ""
    tracked = set(repo.git("ls-files").splitlines())
    assert {"uv.lock", ".copier-answers.yml", "dvc.yaml", f"src/{PACKAGE}/service.py"} <= tracked
    lock = (repo.path / "uv.lock").read_text()
    assert 'name = "paved-ml"' in lock and "subdirectory=libs%2Fpaved-ml" in lock.replace(
        "/", "%2F"
    )


def test_dvc_repro_force_and_status_work_on_a_fresh_render(repo: Repo, tmp_path: Path) -> None:
    """The optional stages (downstream/dvc.yaml) never break the root pipeline's commands.

    On a fresh clone of the render: `dvc status`, `dvc repro -f`, `dvc repro` and `dvc status`
    again all pass without asking for the prediction log or the batch folder, which a new repo
    does not have; turned on, an optional stage runs from its own pipeline file.
    """
    clone = tmp_path / "fresh"
    repo.git("clone", "--quiet", str(repo.path), str(clone), cwd=tmp_path)
    run(["uv", "sync", "--frozen", "--quiet"], clone, repo.env)
    outs = []
    for command in (["status"], ["repro", "-f"], ["repro"], ["status"]):
        outs.append(repo.run("dvc", *command, cwd=clone))
        assert "ERROR" not in outs[-1] and "does not exist" not in outs[-1], (command, outs[-1])
    assert "Running stage 'evaluate'" in outs[1] and "Running stage" not in outs[2]
    assert not (clone / "logs").exists() and not (clone / "data" / "scored").exists()
    assert "up to date" in repo.run("dvc", "status", "dvc.yaml", cwd=clone).lower()
    # Turned on, batch scoring runs from downstream/dvc.yaml, on the paths of the repo root.
    (clone / "data" / "batch").mkdir()
    shutil.copy(clone / "data" / "prepared" / "test.csv", clone / "data" / "batch" / "a.csv")
    stage = "downstream/dvc.yaml:batch_predict"
    repo.run("dvc", "unfreeze", stage, cwd=clone)
    assert "Running stage 'downstream/dvc.yaml:batch_predict'" in repo.run(
        "dvc", "repro", stage, cwd=clone
    )
    scored = repo.python(
        # fastparquet: pyarrow can abort the process at exit after a read (apache/arrow#34314)
        "import json, pandas as pd; print(json.dumps(len(pd.read_parquet("
        "'data/scored/predictions.parquet', engine='fastparquet'))))",
        cwd=clone,
    )
    assert scored == len((clone / "data" / "prepared" / "test.csv").read_text().splitlines()) - 1


def test_lint_and_own_tests_pass(repo: Repo) -> None:
    repo.run("ruff", "check", ".")
    repo.run("ruff", "format", "--check", ".")
    assert "4 passed" in repo.run("pytest", "-q")


def test_pre_commit_hooks_run_from_the_project_environment(repo: Repo) -> None:
    out = repo.run("pre-commit", "run", "--all-files")
    assert "ruff" in out and "Passed" in out and "Failed" not in out
    # The Paved standard and the type checker run as hooks too, from the same environment.
    assert re.search(r"^paved check \(the Paved standard\)\.+Passed$", out, re.MULTILINE), out
    assert re.search(r"^mypy\.+Passed$", out, re.MULTILINE), out
    out = repo.run("pre-commit", "run", "--all-files", "--hook-stage", "pre-push")
    assert "pytest" in out and "Passed" in out


def test_telemetry_is_off_in_the_environment(repo: Repo) -> None:
    env = {k: v for k, v in repo.env.items()}
    for name in ("BENTOML_DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY", "DVC_NO_ANALYTICS"):
        env.pop(name, None)
    out = run(
        [
            "uv",
            "run",
            "--frozen",
            "python",
            "-c",
            "import os; print([os.environ.get(k) for k in "
            "('BENTOML_DO_NOT_TRACK', 'MLFLOW_DISABLE_TELEMETRY', 'DVC_NO_ANALYTICS')])",
        ],
        repo.path,
        env,
    ).stdout
    assert out.strip() == "['true', 'true', '1']"


def test_first_run_promotes_a_champion(repo: Repo) -> None:
    repo.set_param("train", "C", 0.1)
    out = repo.run("dvc", "repro")
    assert "promoted iris-demo v1 (f1_macro=0.8452) to 'champion': there was no champion" in out
    assert repo.champion()["version"] == "1"
    record = json.loads((repo.path / "models/champion/champion.json").read_text())
    assert record["version"] == "1" and record["metrics"]["f1_macro"] == pytest.approx(
        0.8452, abs=1e-4
    )
    metrics = json.loads((repo.path / "metrics.json").read_text())
    assert set(metrics) == {"accuracy", "f1_macro"}


def test_runs_carry_lineage(repo: Repo) -> None:
    run_id = repo.champion()["run_id"]
    tags = repo.python(
        "import json, mlflow; from paved_ml.tracking import use_tracking; "
        "from paved_ml.config import load_config; use_tracking(load_config()); "
        f"print(json.dumps(mlflow.get_run('{run_id}').data.tags))"
    )
    lock = yaml.safe_load((repo.path / "dvc.lock").read_text())
    train_dep = next(
        d for d in lock["stages"]["train"]["deps"] if d["path"] == "data/prepared/train.csv"
    )
    assert tags["paved.team"] == "data-science"
    assert tags["paved.project"] == "iris-demo"
    assert tags["paved.platform_version"] == RELEASE
    assert tags["mlflow.source.git.commit"] == repo.git("rev-parse", "HEAD")
    assert tags["paved.data.data/prepared/train.csv.md5"] == train_dep["md5"]


def test_worse_challenger_leaves_the_champion(repo: Repo) -> None:
    repo.set_param("train", "C", 0.001)
    out = repo.run("dvc", "repro")
    assert "kept champion v1 (f1_macro=0.8452): challenger iris-demo v2 (f1_macro=0.7454)" in out
    assert repo.champion()["version"] == "1"
    assert json.loads((repo.path / "models/champion/champion.json").read_text())["version"] == "1"


def test_better_challenger_becomes_champion(repo: Repo) -> None:
    repo.set_param("train", "C", 3.0)
    out = repo.run("dvc", "repro")
    assert "promoted iris-demo v3 (f1_macro=0.9487) to 'champion': it beats v1" in out
    assert repo.champion()["version"] == "3"
    assert json.loads((repo.path / "models/champion/champion.json").read_text())["version"] == "3"


def test_the_gate_scores_the_champion_on_the_challengers_test_set(repo: Repo) -> None:
    """A new split: the champion is scored on it too, not judged by its old test set's figure."""
    repo.set_param("prepare", "seed", 7)
    repo.set_param("train", "C", 0.001)
    out = repo.run("dvc", "repro")
    test_md5 = hashlib.md5((repo.path / "data/prepared/test.csv").read_bytes()).hexdigest()
    verdict = re.search(
        r"kept champion v3 \(f1_macro=(\d\.\d{4})\): challenger iris-demo v4 "
        r"\(f1_macro=\d\.\d{4}\) does not beat it \(both scored on the same test set, "
        r"md5 (\w+)\)",
        out,
    )
    assert verdict, out
    assert verdict[2] == test_md5
    assert float(verdict[1]) != pytest.approx(0.9487, abs=1e-4), "v3's score on the new split"
    gate = repo.python(
        "import json; from mlflow import MlflowClient; from paved_ml.config import load_config; "
        "from paved_ml.tracking import use_tracking; use_tracking(load_config()); "
        "c = MlflowClient(); run = c.get_model_version('iris-demo', '4').run_id; "
        "data = c.get_run(run).data; print(json.dumps([data.metrics, data.tags]))"
    )
    metrics, tags = gate
    assert metrics["paved.gate.champion.f1_macro"] == pytest.approx(float(verdict[1]), abs=1e-4)
    assert metrics["paved.gate.champion_logged.f1_macro"] == pytest.approx(0.9487, abs=1e-4)
    assert tags["paved.gate.test_set_md5"] == test_md5
    assert tags["paved.gate.basis"] == "same_test_set" and tags["paved.gate.reason"] == "not_better"
    assert repo.champion()["version"] == "3"


def test_bad_data_fails_prepare_naming_the_column(repo: Repo) -> None:
    raw = repo.path / "data/raw/table.csv"
    original = raw.read_bytes()
    lines = original.decode().splitlines()
    header = lines[0].split(",")
    row = lines[5].split(",")
    row[header.index("petal_width_cm")] = "-3.0"
    lines[5] = ",".join(row)
    raw.write_text("\n".join(lines) + "\n")
    try:
        with pytest.raises(RuntimeError) as failure:
            repo.run("dvc", "repro", "--single-item", "prepare")
        assert (
            "column 'petal_width_cm': greater_than_or_equal_to(0) failed in rows 4 (values -3.0)"
            in str(failure.value)
        )
    finally:
        raw.write_bytes(original)
    repo.run("dvc", "repro")  # restored data: the pipeline is whole again
    assert "up to date" in repo.run("dvc", "status").lower()


def test_push_then_pull_in_a_fresh_clone_reproduces_hashes(repo: Repo, tmp_path: Path) -> None:
    repo.git("add", "--all")
    repo.git("commit", "-m", "Train the champion")
    repo.run("dvc", "push")
    clone = tmp_path / "clone"
    repo.git("clone", "--quiet", str(repo.path), str(clone), cwd=tmp_path)
    run(["uv", "sync", "--frozen"], clone, repo.env)
    repo.run("dvc", "pull", cwd=clone)
    assert "up to date" in repo.run("dvc", "status", cwd=clone).lower()
    for out in (
        "data/raw/table.csv",
        "data/prepared/train.csv",
        "data/prepared/test.csv",
        "models/candidate",
        "models/champion",
    ):
        assert _tree_bytes(clone / out) == _tree_bytes(repo.path / out), out


def _tree_bytes(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {"": path.read_bytes()}
    return {
        p.relative_to(path).as_posix(): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def service(repo: Repo) -> Iterator[Service]:
    with serve(repo.path, repo.env) as running:
        yield running


def test_service_predicts_with_the_champion(service: Service) -> None:
    assert service.get("/livez") == 200
    assert service.get("/readyz") == 200
    status, body = service.post(
        "/predict",
        {"rows": [IRIS_ROW, {**IRIS_ROW, "petal_length_cm": 1.2, "petal_width_cm": 0.2}]},
    )
    assert status == 200
    assert body["predictions"] == ["virginica", "setosa"]  # the labels the data uses
    assert (body["model_name"], body["model_version"]) == ("iris-demo", "3")
    for label, probabilities in zip(body["predictions"], body["probabilities"], strict=True):
        assert set(probabilities) == {"setosa", "versicolor", "virginica"}
        assert max(probabilities, key=probabilities.get) == label


MALFORMED = [
    ({"rows": [{**IRIS_ROW, "sepal_length_cm": "wide"}]}, ["rows", 0, "sepal_length_cm"]),
    ({"rows": [{**IRIS_ROW, "colour": "blue"}]}, ["rows", 0, "colour"]),
    (
        {"rows": [{k: v for k, v in IRIS_ROW.items() if k != "petal_width_cm"}]},
        ["rows", 0, "petal_width_cm"],
    ),
    ({"rows": []}, ["rows"]),
    ({"rows": [IRIS_ROW] * 1001}, ["rows"]),
    ({"row": [IRIS_ROW]}, ["rows"]),
    (b'{"rows": [{"sepal_length_cm": 5.1,', []),
]


@pytest.mark.parametrize(
    ("body", "loc"),
    MALFORMED,
    ids=["type", "extra", "missing", "empty", "too-many", "wrong-key", "bad-json"],
)
def test_service_rejects_malformed_requests_naming_the_field(
    service: Service, body: Any, loc: list[Any]
) -> None:
    status, answer = service.post("/predict", body)
    assert status == 400
    assert loc in [error["loc"] for error in answer["detail"]]


def test_service_refuses_a_body_over_the_size_limit_unread(service: Service) -> None:
    from paved_ml.serving import MAX_REQUEST_BYTES

    # Refused on the declared length alone: not a byte of the body was sent.
    status, answer = service.post_headers_only("/predict", declared=MAX_REQUEST_BYTES + 1)
    assert status == 413 and b"send fewer rows" in answer
    # A chunked body is refused as soon as what was read passes the limit.
    over = b" " * (MAX_REQUEST_BYTES + 1)
    status, answer = service.post_headers_only("/predict", chunk=over)
    assert status == 413 and b"send fewer rows" in answer
    # A real client sending the whole body reads the 413 or meets the reset of a refusal.
    padded = b'{"rows": [' + over + b"]}"
    assert service.post_oversized("/predict", padded) in {413, None}
    assert service.post("/predict", {"rows": [IRIS_ROW]})[0] == 200  # and it still serves


def test_stopped_service_leaves_no_process(repo: Repo) -> None:
    with serve(repo.path, repo.env) as running:
        assert running.get("/livez") == 200
    with pytest.raises(ProcessLookupError):
        os.killpg(running.pid, 0)  # no process of the service's group is left


def test_the_service_serves_whatever_the_prediction_log_storage_does(
    repo: Repo, tmp_path: Path
) -> None:
    # A log folder that could not be made at start-up kept the service from answering /livez.
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the log's parent folder should be")
    env = {
        **repo.env,
        "PAVED_PREDICTION_LOG": str(blocker / "log"),
        "PAVED_PREDICTION_LOG_SECONDS": "0.2",
    }
    with serve(repo.path, env) as running:
        assert running.get("/livez") == 200 and running.get("/readyz") == 200
        assert running.post("/predict", {"rows": [IRIS_ROW, IRIS_ROW]})[0] == 200
        wanted = 'paved_prediction_log_problems_total{kind="unwritable rows"} 2.0'
        deadline, metrics = time.monotonic() + 30, ""
        while wanted not in metrics and time.monotonic() < deadline:
            time.sleep(0.2)
            with urllib.request.urlopen(running.url + "/metrics", timeout=5) as answer:
                metrics = answer.read().decode()
        assert wanted in metrics, [m for m in metrics.splitlines() if "paved" in m]
        assert running.post("/predict", {"rows": [IRIS_ROW]})[0] == 200  # and it still serves


def test_a_change_to_the_contract_reaches_prepare_the_service_and_the_drift_report(
    repo: Repo, tmp_path: Path
) -> None:
    """The contract is declared once: tighten one range, and all three apply it.

    The service logs requests under the shipped contract; then petal_length_cm is capped at
    5 cm. prepare refuses the raw table naming the column, check and rows; the service
    refuses a 5.1 cm petal naming the field; the drift report counts the logged rows the
    contract now refuses.
    """
    log = tmp_path / "predictions"
    logged_env = {**repo.env, "PAVED_PREDICTION_LOG": str(log)}
    with serve(repo.path, logged_env) as service:
        assert service.post("/predict", {"rows": [IRIS_ROW] * 60})[0] == 200
    contract = repo.path / "src" / PACKAGE / "contract.py"
    original = contract.read_text()
    shipped = "petal_length_cm: float = pa.Field(ge=0, le=30)"
    assert shipped in original
    contract.write_text(original.replace(shipped, shipped.replace("le=30", "le=5")))
    try:
        with pytest.raises(RuntimeError) as failure:
            repo.run("python", "-m", f"{PACKAGE}.pipeline.prepare")
        assert "column 'petal_length_cm': less_than_or_equal_to(5) failed in rows" in str(
            failure.value
        )
        with serve(repo.path, repo.env) as service:
            status, body = service.post("/predict", {"rows": [IRIS_ROW]})  # 5.1 cm
            assert status == 400
            assert ["rows", 0, "petal_length_cm"] in [error["loc"] for error in body["detail"]]
            smaller = {**IRIS_ROW, "petal_length_cm": 4.0}
            assert service.post("/predict", {"rows": [smaller]})[0] == 200
        reports = [
            "--report",
            str(tmp_path / "drift.html"),
            "--summary",
            str(tmp_path / "drift.json"),
        ]
        drift = subprocess.run(
            [
                "uv",
                "run",
                "--frozen",
                "--group",
                "monitoring",
                "paved-ml",
                "drift",
                "--log",
                str(log),
                *reports,
            ],
            cwd=repo.path,
            env=repo.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert drift.returncode in (0, 1), drift.stdout + drift.stderr
        assert "REFUSED  petal_length_cm: 60 logged rows break the data contract" in drift.stdout
        assert json.loads((tmp_path / "drift.json").read_text())["violations"] == {
            "petal_length_cm": 60
        }
    finally:
        contract.write_text(original)


def test_labels_sent_back_by_prediction_id_judge_the_models_accuracy(
    repo: Repo, tmp_path: Path
) -> None:
    """The service's ids, its log, then `paved-ml feedback`: noise in the labels fails it."""
    log = tmp_path / "predictions"
    table = pd.read_csv(repo.path / "data/raw/table.csv")
    rows = table.drop(columns="species").to_dict("records")
    ids: list[str] = []
    with serve(repo.path, {**repo.env, "PAVED_PREDICTION_LOG": str(log)}) as service:
        for start in range(0, len(rows), 50):
            request = urllib.request.Request(
                service.url + "/predict",
                data=json.dumps({"rows": rows[start : start + 50]}).encode(),
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                body = json.load(answer)
                header = answer.headers["Paved-Request-Id"]
            assert body["prediction_ids"][0] == f"{header}-0"
            ids += body["prediction_ids"]
    truth = table["species"].to_numpy()
    right = tmp_path / "labels.csv"
    pd.DataFrame({"prediction_id": ids, "species": truth}).to_csv(right, index=False)
    noisy = tmp_path / "noisy.csv"
    wrong = truth.copy()
    wrong[::2] = np.roll(truth, 50)[::2]  # every other label names another species
    pd.DataFrame({"prediction_id": [*ids, "unknown-0"], "species": [*wrong, "setosa"]}).to_csv(
        noisy, index=False
    )

    def feedback(labels: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["uv", "run", "--frozen", "paved-ml", "feedback", str(labels), "--log", str(log),
             "--summary", str(tmp_path / "feedback.json")],
            cwd=repo.path, env=repo.env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    passed = feedback(right)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "accuracy holds: 150 of 150 labels joined with a logged prediction" in passed.stdout
    failed = feedback(noisy)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "under monitoring.min_f1_macro (0.85)" in failed.stdout
    assert "1 match no logged prediction id" in failed.stdout
    summary = json.loads((tmp_path / "feedback.json").read_text())
    assert summary["failed"] and summary["unmatched"] == 1 and summary["matched"] == 150
    assert "logged to MLflow: run " in failed.stdout


@pytest.fixture
def tracking_server(tmp_path: Path) -> Iterator[str]:
    """`mlflow server` on a free loopback port (sqlite store); stopped by PID afterwards."""
    with mlflow_server(tmp_path) as url:
        yield url


def test_paved_ci_verify_never_registers_in_the_tracking_server(
    repo: Repo, tracking_server: str
) -> None:
    """CI trains in a throwaway store: the team's server gets no version and no alias."""
    from mlflow.tracking import MlflowClient

    server = MlflowClient(tracking_uri=tracking_server, registry_uri=tracking_server)
    env = {**repo.env, "MLFLOW_TRACKING_URI": tracking_server}
    params = (repo.path / "params.yaml").read_text()
    repo.set_param("train", "C", 2.0)  # a change, so the check's `dvc repro` really trains
    try:
        out = run(
            ["uv", "run", "--frozen", "paved", "ci", "verify", "--only", "pipeline"], repo.path, env
        )
        assert "ok pipeline" in out.stderr, out.stderr
        assert server.search_registered_models() == []
        assert server.search_experiments(filter_string="name = 'iris-demo'") == []

        # The same pipeline outside the check does use the server: the check made the difference.
        repo.set_param("train", "C", 2.5)
        run(["uv", "run", "--frozen", "dvc", "repro"], repo.path, env)
        models = server.search_registered_models()
        assert [model.name for model in models] == ["iris-demo"]
    finally:
        (repo.path / "params.yaml").write_text(params)
