"""paved_ml.serving: the request model, the predictor, and a real BentoML service."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow.sklearn
import numpy as np
import pandas as pd
import psutil
import pytest
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema
from paved_ml.errors import PavedMLError
from paved_ml.serving import MODEL_DIR_ENV, ChampionModel
from pydantic import ValidationError
from sklearn.base import BaseEstimator

from ci.golden_path import Service, free_port, launch, running, serve, stop
from tests.lib.helpers import fit

pytestmark = pytest.mark.libs

ROW = {"sl": 6.3, "sw": 3.3, "pl": 6.0, "pw": 2.5}


@pytest.fixture(scope="module")
def champion_dir(tmp_path_factory: pytest.TempPathFactory, iris: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("serving") / "champion"
    features = iris[["sl", "sw", "pl", "pw"]]
    model = fit(iris, 1.0)
    mlflow.sklearn.save_model(
        model, path, signature=infer_signature(features, model.predict(features))
    )
    (path / "champion.json").write_text(json.dumps({"model_name": "iris", "version": "7"}))
    return path


def test_row_model_is_strict(champion_dir: Path) -> None:
    row = ChampionModel(champion_dir).row_model
    assert list(row.model_fields) == ["sl", "sw", "pl", "pw"]
    assert row(**ROW).model_dump() == ROW
    for bad in (
        {**ROW, "sl": "6.3"},
        {**ROW, "extra": 1},
        {"sl": 1.0},
        {**ROW, "pw": float("nan")},
    ):
        with pytest.raises(ValidationError):
            row(**bad)


def test_predictor_predicts_and_names_the_model(champion_dir: Path) -> None:
    champion = ChampionModel(champion_dir)
    predictor = champion.load()
    rows = [champion.row_model(**ROW), champion.row_model(sl=5.0, sw=3.4, pl=1.5, pw=0.2)]
    result = predictor.predict(rows)
    assert result.predictions == [2, 0]
    assert (result.model_name, result.model_version) == ("iris", "7")


class Doubting:
    """A classifier whose `predict` disagrees with its own probabilities (as a calibrated
    model's can), counting the calls it gets."""

    classes_ = np.array(["no", "yes"])

    def __init__(self) -> None:
        self.calls: list[str] = []

    def predict(self, X: Any) -> np.ndarray:
        self.calls.append("predict")
        return np.array(["no"] * len(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        self.calls.append("predict_proba")
        return np.array([[0.25, 0.75]] * len(X))


def test_a_classifier_is_asked_once_and_each_label_is_its_likeliest(
    champion_dir: Path,
) -> None:
    from paved_ml.models import likeliest

    doubting = Doubting()
    labels, probabilities = likeliest(doubting, np.zeros((3, 4)))
    assert labels.tolist() == ["yes"] * 3 and probabilities.shape == (3, 2)
    assert doubting.calls == ["predict_proba"]
    # The service asks its champion once per request, for the probabilities it answers.
    predictor = ChampionModel(champion_dir).load()
    model = predictor.loaded.model
    calls: list[str] = []
    for method in ("predict", "predict_proba"):
        original = getattr(model, method)

        def counted(X: Any, _original: Any = original, _method: str = method) -> Any:
            calls.append(_method)
            return _original(X)

        setattr(model, method, counted)
    result = predictor.predict([ChampionModel(champion_dir).row_model(**ROW)])
    assert calls == ["predict_proba"]
    [probabilities_of_row] = result.probabilities
    assert str(result.predictions[0]) == max(probabilities_of_row, key=probabilities_of_row.get)


def finite_assumed(predictor: Any, call: Any) -> list[bool]:
    """What scikit-learn's `assume_finite` was during each model call that `call` made."""
    import sklearn

    model, seen = predictor.loaded.model, []
    original = model.predict_proba

    def recording(X: Any) -> Any:
        seen.append(sklearn.get_config()["assume_finite"])
        return original(X)

    model.predict_proba = recording
    try:
        call()
    finally:
        del model.predict_proba
    return seen


def test_scikit_learn_skips_its_finite_check_only_for_rows_the_request_model_checked(
    champion_dir: Path, tmp_path: Path
) -> None:
    champion = ChampionModel(champion_dir)
    predictor = champion.load()
    rows = [champion.row_model(**ROW)]
    assert finite_assumed(predictor, lambda: predictor.predict(rows)) == [True]
    frame = pd.DataFrame([ROW])  # a frame nobody validated is checked by scikit-learn
    assert finite_assumed(predictor, lambda: predictor.predict_frame(frame)) == [False]
    # A column that takes nulls lets NaN through the request model: scikit-learn checks.
    optional = tmp_path / "optional"
    model = mlflow.sklearn.load_model(str(champion_dir))
    columns = [ColSpec("double", name, required=name != "pw") for name in ROW]
    mlflow.sklearn.save_model(model, optional, signature=ModelSignature(Schema(columns)))
    lenient = ChampionModel(optional)
    predictor = lenient.load()
    rows = [lenient.row_model(**ROW)]
    assert finite_assumed(predictor, lambda: predictor.predict(rows)) == [False]


def test_missing_champion_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(PavedMLError, match="run `dvc pull` or `dvc repro` first"):
        ChampionModel.from_env().row_model  # noqa: B018


SERVICE = """
from typing import Annotated

import bentoml
from paved_ml.serving import MAX_ROWS, ChampionModel, Prediction, PredictionIdHeader
from pydantic import Field

CHAMPION = ChampionModel.from_env()
Row = CHAMPION.row_model


@bentoml.service(name="lib-test")
class LibTest:
    def __init__(self) -> None:
        self.predictor = CHAMPION.load()

    async def __is_ready__(self) -> bool:
        return self.predictor.ready

    @bentoml.on_shutdown
    def close(self) -> None:
        self.predictor.close()

    @bentoml.api
    def predict(
        self, rows: Annotated[list[Row], Field(min_length=1, max_length=MAX_ROWS)]
    ) -> Prediction:
        return self.predictor.predict(rows)

    # async, as the template's: BentoML's worker answers its JSON calls directly
    # (paved_ml._bentoml_fix.DirectJSONMiddleware); `predict` goes through BentoML's path.
    @bentoml.api
    async def predict_async(
        self, rows: Annotated[list[Row], Field(min_length=1, max_length=MAX_ROWS)]
    ) -> Prediction:
        if rows[0].sl == 99.0:  # a row that makes the service fail, as a model can
            raise RuntimeError("the model failed")
        return self.predictor.predict(rows)


LibTest.add_asgi_middleware(PredictionIdHeader)
"""
COMMAND = (sys.executable, "-m", "bentoml", "serve", "lib_service:LibTest")


def service_folder(champion: Path, name: str) -> tuple[Path, dict[str, str]]:
    """A folder with the service module, and the environment that serves `champion`."""
    folder = champion.parent / name
    folder.mkdir()
    (folder / "lib_service.py").write_text(SERVICE)
    env = {
        **os.environ,
        MODEL_DIR_ENV: str(champion),
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYTHONUNBUFFERED": "1",  # the server's log is read while it runs
    }
    return folder, env


@pytest.fixture(scope="module")
def service(champion_dir: Path) -> Iterator[Service]:
    folder, env = service_folder(champion_dir, "svc")
    with serve(folder, env, command=COMMAND) as svc:
        yield svc


def test_bentoml_service_serves_and_rejects(service: Service) -> None:
    status, body = service.post("/predict", {"rows": [ROW]})
    assert status == 200
    assert {k: body[k] for k in ("predictions", "model_name", "model_version")} == {
        "predictions": [2],
        "model_name": "iris",
        "model_version": "7",
    }
    # A classifier's labels, each with its probability; the predicted one is the likeliest.
    [probabilities] = body["probabilities"]
    assert (
        set(probabilities) == {"0", "1", "2"} and max(probabilities, key=probabilities.get) == "2"
    )
    assert abs(sum(probabilities.values()) - 1) < 1e-9
    status, body = service.post("/predict", {"rows": [{**ROW, "sl": "x"}]})
    assert status == 400 and body["detail"][0]["loc"] == ["rows", 0, "sl"]
    status, body = service.post("/predict", {"rows": [ROW] * 1001})
    assert status == 400 and body["detail"][0]["loc"] == ["rows"]


def test_smoke_passes_a_sound_service_and_names_each_check_that_fails(service: Service) -> None:
    from paved_ml.smoke import smoke

    from tests.lib.iris_contract import CONTRACT, NARROW

    report = smoke(service.url, CONTRACT, p99_ms=5000, requests=20)
    assert report.ok, report.checks
    assert [check.name for check in report.checks] == ["answer", "labels", "p99"]
    assert "3 predictions from iris v7" in report.checks[0].detail
    assert "over 20 requests, within the 5000 ms budget" in report.checks[2].detail

    labels = smoke(service.url, NARROW, p99_ms=5000, requests=1)
    assert [check.ok for check in labels.checks] == [True, False, True]
    assert "predictions break the contract" in labels.checks[1].detail
    assert "isin" in labels.checks[1].detail

    slow = smoke(service.url, CONTRACT, p99_ms=0.001, requests=5)
    assert not slow.ok and "over the 0.001 ms budget" in slow.checks[2].detail
    elsewhere = smoke(service.url + "/v2", CONTRACT, p99_ms=5000)
    assert not elsewhere.ok and "status 404" in elsewhere.checks[0].detail
    nobody = smoke(f"http://127.0.0.1:{free_port()}", CONTRACT, p99_ms=5000)
    assert not nobody.ok and "no answer from" in nobody.checks[0].detail


def test_paved_ml_smoke_exits_by_what_it_found(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from paved_ml.cli import main

    params = tmp_path / "params.yaml"
    params.write_text("deploy:\n  smoke_p99_ms: 5000\n")
    common = ["--params", str(params), "--requests", "5"]
    assert (
        main(["smoke", service.url, "--contract", "tests.lib.iris_contract:CONTRACT", *common]) == 0
    )
    out = capsys.readouterr().out
    assert "ok  labels: valid for 'species'" in out and f"smoke passed: {service.url}" in out
    params.write_text("deploy:\n  smoke_p99_ms: 0.001\n")
    assert (
        main(["smoke", service.url, "--contract", "tests.lib.iris_contract:CONTRACT", *common]) == 1
    )
    assert "FAILED  p99:" in capsys.readouterr().out
    bare = "tests.lib.iris_contract:WITHOUT_EXAMPLES"
    assert main(["smoke", service.url, "--contract", bare, *common]) == 2
    assert "the contract has no examples" in capsys.readouterr().err
    params.write_text("deploy:\n  smoke_p99_ms: fast\n")
    assert main(["smoke", service.url, "--contract", bare, *common]) == 2
    assert "deploy.smoke_p99_ms='fast'" in capsys.readouterr().err


def test_each_answer_carries_its_own_request_id(service: Service) -> None:
    """BentoML's request id (X-BentoML-Request-ID) outlives the idle tracing it came from."""
    ids = []
    for _ in range(3):
        request = urllib.request.Request(
            service.url + "/predict",
            data=json.dumps({"rows": [ROW]}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            ids.append(response.headers["X-BentoML-Request-ID"])
    assert all(ids) and len(set(ids)) == 3, ids


@pytest.mark.parametrize("route", ["/predict", "/predict_async"])
def test_each_prediction_has_an_id_in_the_answer_and_its_request_in_a_header(
    service: Service, route: str
) -> None:
    """BentoML's path and the direct one alike: ids `<request>-<row>`, the request a header."""
    seen = set()
    for _ in range(3):
        answer = raw_post(
            service, route, json.dumps({"rows": [ROW] * 3}).encode(), "application/json"
        )
        assert answer["status"] == 200
        request = answer["headers"]["paved-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", request), request
        assert answer["body"]["prediction_ids"] == [f"{request}-{row}" for row in range(3)]
        seen.add(request)
    assert len(seen) == 3, "each request has its own id"
    refused = raw_post(service, route, json.dumps({"rows": []}).encode(), "application/json")
    assert refused["status"] == 400 and "paved-request-id" not in refused["headers"]


#: A prediction id: the request's 128 random bits in hex, a dash, the row.
PREDICTION_ID = re.compile(rb"[0-9a-f]{32}-[0-9]+")


def without_ids(raw: bytes) -> bytes:
    """An answer with each prediction id replaced by the same placeholder."""
    return PREDICTION_ID.sub(b"<id>", raw)


def raw_post(service: Service, path: str, body: bytes, content_type: str) -> dict[str, Any]:
    """POST `body` as `content_type`: the status, the answer (raw and decoded), the headers."""
    host, port = service.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"content-type": content_type})
        response = connection.getresponse()
        raw = response.read()
        return {
            "status": response.status,
            "raw": raw,
            "body": json.loads(raw),
            "headers": {name.lower(): value for name, value in response.getheaders()},
        }
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"rows": [ROW, {**ROW, "sl": 4.5}]}, 200),
        ({"rows": [{**ROW, "sl": "x"}]}, 400),  # a mistyped field
        ({"rows": []}, 400),  # too few rows
        ({"rows": [ROW], "extra": 1}, 200),  # BentoML's input model ignores other keys
        ("not an object", 400),
        ({"rows": [{**ROW, "sl": 99.0}]}, 500),  # the API's function raises
    ],
)
def test_a_json_call_answered_directly_is_answered_as_bentoml_answers_it(
    service: Service, body: Any, status: int
) -> None:
    """The direct JSON path and BentoML's own give the same status, answer and headers.

    A content type BentoML does not know (text/plain) is read as JSON by BentoML's path
    and left to it by the direct one (tests/libs/test_bentoml_fix.py shows which path
    answers which call). A body that does not validate is handed back to BentoML, so its
    400 is always BentoML's.
    """
    data = json.dumps(body).encode()
    direct = raw_post(service, "/predict_async", data, "application/json; charset=utf-8")
    by_bentoml = raw_post(service, "/predict_async", data, "text/plain")
    assert direct["status"] == by_bentoml["status"] == status, (direct, by_bentoml)
    assert without_ids(direct["raw"]) == without_ids(by_bentoml["raw"])  # byte for byte
    if status == 200:  # and the same as the synchronous API's, which BentoML answers
        synchronous = raw_post(service, "/predict", data, "application/json")["raw"]
        assert without_ids(direct["raw"]) == without_ids(synchronous)
    for answer in (direct, by_bentoml):
        assert answer["headers"]["server"] == "BentoML Service/lib-test"
        assert len(answer["headers"]["x-bentoml-request-id"]) == 16
        assert answer["headers"]["content-type"] == "application/json"


class Probe(BaseEstimator):
    """A scikit-learn estimator that predicts each row's sum, after sleeping `delay` seconds
    (the last column); with `fail_on_zeros`, it refuses an all-zero row (the warm-up's)."""

    def __init__(self, fail_on_zeros: bool = False) -> None:
        self.fail_on_zeros = fail_on_zeros

    def fit(self, X: Any, y: Any = None) -> Probe:
        return self

    def predict(self, X: Any) -> np.ndarray:
        values = np.asarray(X, dtype=float)
        if self.fail_on_zeros and not values.any(axis=1).all():
            raise ValueError("probe refuses an all-zero row")
        time.sleep(float(values[:, -1].max()))
        return values.sum(axis=1)


#: One column of each numeric MLflow type ("float" is float32, "integer" int32).
PROBE_SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec("double", "x"),
            ColSpec("float", "f"),
            ColSpec("long", "n"),
            ColSpec("integer", "i"),
            ColSpec("double", "delay"),
        ]
    )
)
#: A probe row as JSON literals, so that bodies can hold what json.dumps cannot write.
PROBE_ROW = {"x": "1.5", "f": "2.5", "n": "3", "i": "4", "delay": "0"}


def save_probe(path: Path, *, fail_on_zeros: bool = False) -> Path:
    """A champion folder holding a Probe, saved with mlflow.sklearn like any estimator."""
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)  # the server cannot import this test module
    try:
        mlflow.sklearn.save_model(
            Probe(fail_on_zeros=fail_on_zeros),
            path,
            signature=PROBE_SIGNATURE,
            serialization_format="cloudpickle",
            pip_requirements=[],
        )
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    (path / "champion.json").write_text(json.dumps({"model_name": "probe", "version": "1"}))
    return path


def probe_body(**literals: str) -> bytes:
    """A one-row request body: PROBE_ROW with some fields replaced by raw JSON literals."""
    row = {**PROBE_ROW, **literals}
    fields = ", ".join(f'"{name}": {literal}' for name, literal in row.items())
    return f'{{"rows": [{{{fields}}}]}}'.encode()


@pytest.fixture(scope="module")
def probe_champion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_probe(tmp_path_factory.mktemp("probe") / "champion")


@pytest.fixture(scope="module")
def probe_service(probe_champion: Path) -> Iterator[Service]:
    folder, env = service_folder(probe_champion, "svc")
    with serve(folder, env, command=COMMAND) as svc:
        yield svc


def assert_rejected(service: Service, field: str, literal: str, error: str) -> None:
    status, body = service.post("/predict", probe_body(**{field: literal}))
    assert status == 400, (field, literal, status, body)
    assert [(d["loc"], d["type"]) for d in body["detail"]] == [(["rows", 0, field], error)]


def test_probe_service_serves(probe_service: Service) -> None:
    assert probe_service.get("/readyz") == 200
    status, body = probe_service.post("/predict", probe_body())
    assert status == 200 and PREDICTION_ID.fullmatch(body.pop("prediction_ids")[0].encode())
    assert body == {
        "predictions": [11.0],
        "probabilities": None,
        "model_name": "probe",
        "model_version": "1",
    }


@pytest.mark.parametrize("field", ["x", "f"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_non_finite_numbers_are_400(probe_service: Service, field: str, literal: str) -> None:
    # The request body is parsed by pydantic (JSON's NaN and Infinity literals are read as
    # floats, 1e999 overflows to inf), then the row model's allow_inf_nan=False rejects them.
    assert_rejected(probe_service, field, literal, "finite_number")


@pytest.mark.parametrize(
    ("field", "error"),
    [("x", "float_type"), ("f", "float_type"), ("n", "int_type"), ("i", "int_type")],
)
def test_null_in_a_required_numeric_column_is_400(
    probe_service: Service, field: str, error: str
) -> None:
    assert_rejected(probe_service, field, "null", error)


#: (field, JSON literal, the error if rejected): what each column's numpy dtype holds.
DTYPE_LIMITS = [
    # "long" is int64: its bounds are accepted, one beyond them is not.
    ("n", str(2**63 - 1), None),
    ("n", str(-(2**63)), None),
    ("n", str(2**63), "less_than_equal"),
    ("n", str(2**70), "less_than_equal"),
    ("n", str(-(2**63) - 1), "greater_than_equal"),
    # "integer" is int32.
    ("i", str(2**31 - 1), None),
    ("i", str(2**31), "less_than_equal"),
    # "double" is float64: an integer literal must be exactly representable in it.
    ("x", str(2**70), None),
    ("x", str(2**70 + 1), "value_error"),
    ("x", str(2**53 + 1), "value_error"),
    pytest.param("x", str(10**400), "value_error", id="x-10**400-value_error"),
    ("x", "1e308", None),
    # "float" is float32: exact integers up to 2**24, finite up to about 3.4e38.
    ("f", str(2**24), None),
    ("f", str(2**24 + 1), "value_error"),
    ("f", "1e39", "less_than_equal"),
    ("f", "-1e39", "greater_than_equal"),
]


@pytest.mark.parametrize(("field", "literal", "error"), DTYPE_LIMITS)
def test_numbers_the_columns_dtype_cannot_hold_are_400(
    probe_service: Service, field: str, literal: str, error: str | None
) -> None:
    if error is not None:
        assert_rejected(probe_service, field, literal, error)
        return
    status, body = probe_service.post("/predict", probe_body(**{field: literal}))
    row = {**PROBE_ROW, field: literal}
    expected = np.array([[float(row[name]) for name in PROBE_ROW]]).sum(axis=1).tolist()
    assert (status, body["predictions"]) == (200, expected)


def test_failed_warm_up_is_logged_and_reported_not_ready(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    champion = save_probe(tmp_path_factory.mktemp("broken") / "champion", fail_on_zeros=True)
    folder, env = service_folder(champion, "svc")
    # /readyz is what fails here: wait for /livez instead.
    with serve(folder, env, command=COMMAND, ready_path="/livez") as service:
        server = psutil.Process(service.pid)
        workers = server.children(recursive=True)
        assert service.get("/livez") == 200
        assert service.get("/readyz") == 503
        time.sleep(1)  # the server and its worker stay up: the same processes a second later
        assert server.is_running() and server.status() != psutil.STATUS_ZOMBIE
        assert server.children(recursive=True) == workers
        assert (service.get("/livez"), service.get("/readyz")) == (200, 503)
        # The failure is in the log, with the model's own error.
        log = (folder / ".serve.log").read_text()
        assert "warm-up prediction of model probe version 1 failed" in log
        assert "ValueError: probe refuses an all-zero row" in log
        # Readiness only keeps traffic away: a row the model can answer is still answered.
        assert service.post("/predict", probe_body())[0] == 200


def answers_readyz(service: Service) -> bool:
    try:
        return service.get("/readyz") == 200
    except OSError:
        return False


def in_flight(url: str) -> float:
    """How many /predict requests the server counts as in progress (its /metrics)."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("bentoml_service_request_in_progress{") and 'endpoint="/predict"' in line
    )


def test_sigterm_lets_the_request_in_flight_finish(probe_champion: Path) -> None:
    folder, env = service_folder(probe_champion, "svc-sigterm")
    process, service, log = launch(folder, env, command=COMMAND)
    answers: list[tuple[int, Any]] = []
    with running(
        process,
        lambda: answers_readyz(service),
        timeout=90,
        failure=lambda: log.read_text()[-4000:],
    ):
        slow = threading.Thread(
            target=lambda: answers.append(service.post("/predict", probe_body(delay="2")))
        )
        slow.start()
        deadline = time.monotonic() + 10
        while in_flight(service.url) < 1:
            assert time.monotonic() < deadline, "the slow request never arrived"
            time.sleep(0.05)
        started = time.monotonic()
        escalated = stop(process)  # SIGTERM to the server's process group, then waits
        stopped = time.monotonic() - started
        slow.join(timeout=30)
    assert [(status, {**body, "prediction_ids": None}) for status, body in answers] == [
        (
            200,
            {
                "prediction_ids": None,
                "predictions": [13.0],
                "probabilities": None,
                "model_name": "probe",
                "model_version": "1",
            },
        )
    ]
    assert not escalated, log.read_text()[-4000:]
    # The server waited for the request (about 2 s of sleep) and exited well within stop's
    # 20 s before it escalates.
    assert process.returncode is not None and 0.5 < stopped < 20


#: A server whose child leaves its process group (as BentoML's workers may) and outlives it.
LEAVER = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
    "start_new_session=True)\n"
    "time.sleep(60)\n"
)


@pytest.mark.parametrize(("leaves", "escalates"), [(False, False), (True, True)])
def test_stop_reports_escalation_to_sigkill(leaves: bool, escalates: bool) -> None:
    script = LEAVER if leaves else "import time; time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 10
    while leaves and not psutil.Process(process.pid).children():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    children = psutil.Process(process.pid).children()
    assert stop(process) is escalates
    assert process.returncode == -signal.SIGTERM
    assert all(exits(child) for child in children)


def exits(process: psutil.Process, timeout: float = 5) -> bool:
    """Whether `process` is gone (or a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _drive(
    limit: int, chunks: list[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes]:
    """Send `chunks` through RequestSizeLimit to an echo app; return (status, body)."""
    import asyncio

    from paved_ml.serving import RequestSizeLimit

    async def echo(scope: dict, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    incoming = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": headers}
    asyncio.run(RequestSizeLimit(echo, max_bytes=limit)(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_request_size_limit_refuses_a_declared_length_unread() -> None:
    status, body = _drive(10, [b"x" * 11], [(b"content-length", b"11")])
    assert status == 413 and b"over 10 bytes" in body


def test_request_size_limit_counts_a_chunked_body_and_passes_one_within_it() -> None:
    assert _drive(10, [b"x" * 6, b"y" * 6], [])[0] == 413
    assert _drive(12, [b"x" * 6, b"y" * 6], []) == (200, b"x" * 6 + b"y" * 6)


LIMITED_SERVICE = (
    SERVICE.replace(
        "from paved_ml.serving import MAX_ROWS, ChampionModel, Prediction",
        "from paved_ml.serving import MAX_ROWS, ChampionModel, Prediction, RequestSizeLimit",
    )
    + "\n\nLibTest.add_asgi_middleware(RequestSizeLimit)\n"
)
LIMIT = 64 * 1024


def peak_rss(pid: int) -> int:
    """The summed peak resident memory (VmHWM, bytes) of `pid` and every process below it."""
    total = 0
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        with open(f"/proc/{process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
    return total


def oversized(url: str, *, declared: int, sent: int, chunked: bool) -> int | None:
    """Send a request whose body is over the limit; return the status the service answers.

    None when the connection was reset instead: a server that refuses a body unread closes
    the connection with the rest of the body still arriving, and the reset may beat its
    answer to the client.
    """
    host, port = url.removeprefix("http://").split(":")
    head = f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {declared}\r\n"
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall((head + "\r\n").encode())
            block = b" " * (64 * 1024)
            for _ in range(sent // len(block)):
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        except ConnectionError:
            pass  # refused before the body was all sent: what the limit is for
        try:
            answer = sock.recv(4096).decode("latin-1")
        except ConnectionError:
            return None
    return int(answer.split(" ", 2)[1]) if answer else None


def test_a_flood_of_oversized_bodies_is_refused_413_and_memory_stays_flat(
    probe_champion: Path,
) -> None:
    """PAVED_MAX_REQUEST_BYTES sets the limit; 60 oversized requests move the peak RSS little.

    Declared 60 MB bodies are refused on the header; chunked ones are read to the limit
    and refused. Read whole and parsed, as they were before the limit, one 60 MB body
    alone raised the server's peak by hundreds of MB.
    """
    folder, env = service_folder(probe_champion, "limited")
    (folder / "lib_service.py").write_text(LIMITED_SERVICE)
    env["PAVED_MAX_REQUEST_BYTES"] = str(LIMIT)
    with serve(folder, env, command=COMMAND) as svc:
        fits = probe_body(delay="0" + " " * (LIMIT - len(probe_body()) - 8))
        assert svc.post("/predict", fits)[0] == 200
        # Just over the variable's limit: refused on the declared length, or once read.
        just_over = len(fits) + 16
        assert svc.post_headers_only("/predict", declared=just_over)[0] == 413
        assert svc.post_headers_only("/predict", chunk=b" " * just_over)[0] == 413
        assert svc.post_oversized("/predict", fits + b" " * 16) in {413, None}
        before = peak_rss(svc.pid)
        statuses = [
            oversized(svc.url, declared=60_000_000, sent=4 << 20, chunked=False) for _ in range(30)
        ] + [oversized(svc.url, declared=0, sent=4 << 20, chunked=True) for _ in range(30)]
        after = peak_rss(svc.pid)
        # Each one refused: a 413 read back, or the reset of a connection closed on the rest.
        assert set(statuses) <= {413, None}, statuses
        assert svc.post("/predict", probe_body())[0] == 200  # and it still serves
    assert after - before < 16 << 20, (before, after)


def test_a_limit_that_is_not_a_number_of_bytes_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from paved_ml.serving import MAX_REQUEST_BYTES, max_request_bytes

    monkeypatch.delenv("PAVED_MAX_REQUEST_BYTES", raising=False)
    assert max_request_bytes() == MAX_REQUEST_BYTES
    for bad in ("1MB", "0", "-5"):
        monkeypatch.setenv("PAVED_MAX_REQUEST_BYTES", bad)
        with pytest.raises(PavedMLError, match="PAVED_MAX_REQUEST_BYTES"):
            max_request_bytes()


def test_the_service_records_what_it_serves_when_the_log_is_configured(
    champion_dir: Path,
) -> None:
    """Rolled by age while it serves, and what is queued is written when it stops."""
    from paved_ml.prediction_log import read_prediction_log

    folder, env = service_folder(champion_dir, "logged")
    log = folder / "predictions"
    env.update({"PAVED_PREDICTION_LOG": str(log), "PAVED_PREDICTION_LOG_SECONDS": "0.3"})
    rows = [ROW, {**ROW, "pl": 1.4, "pw": 0.2}]
    with serve(folder, env, command=COMMAND) as svc:
        answers = [svc.post("/predict", {"rows": rows})[1] for _ in range(3)]
        deadline = time.monotonic() + 30
        while not list(log.glob("*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(log.glob("*.parquet"))  # rolled by age, the service still running
        env["PAVED_PREDICTION_LOG_SECONDS"] = "3600"
    recorded = read_prediction_log(log)
    assert recorded[["sl", "sw", "pl", "pw"]].to_dict("records") == rows * 3  # no warm-up row
    assert recorded["prediction"].tolist() == [p for a in answers for p in a["predictions"]]
    assert recorded["prediction_id"].tolist() == [i for a in answers for i in a["prediction_ids"]]
    assert set(recorded["model_version"]) == {"7"} and set(recorded["model_name"]) == {"iris"}

    held = folder / "held"  # rolled only by the stop: an hour is never reached
    env["PAVED_PREDICTION_LOG"] = str(held)
    with serve(folder, env, command=COMMAND) as svc:
        assert svc.post("/predict", {"rows": rows})[0] == 200
        assert not list(held.glob("*.parquet"))
    assert read_prediction_log(held)[["sl", "sw", "pl", "pw"]].to_dict("records") == rows
