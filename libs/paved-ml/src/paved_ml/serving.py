"""What a team repo's BentoML service needs, so that its service module stays a few lines.

`ChampionModel` reads the champion folder (an MLflow model plus champion.json), takes its
strict pydantic row model from the data contract, or else from the model's signature, both
built by `paved_ml.contract.build_row_model` (unknown keys, wrong types, missing fields,
nulls in required fields, non-finite numbers and numbers the column's dtype cannot hold are
rejected, which BentoML turns into a 400 naming the field), and loads a predictor
that is warmed up and moved out of the garbage collector's way before the first request,
so that collections do not stall requests later. A warm-up that fails is logged and
recorded rather than raised: the service starts, and reports itself not ready.

Every prediction has an id, `<request id>-<row>`: the request id is 128 random bits, sent
back in the `Paved-Request-Id` header (`PredictionIdHeader`), and each row's id is in the
answer's `prediction_ids` and the prediction log, for labels that arrive later to be joined
on (`paved-ml feedback`).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from paved_ml import _bentoml_fix, _sklearn_fix
from paved_ml.champion import DEFAULT_DIR, load_champion, read_mlmodel
from paved_ml.contract import Contract, RowField, build_row_model
from paved_ml.errors import PavedMLError
from paved_ml.prediction_log import PredictionLog

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_BYTES_ENV",
    "MAX_ROWS",
    "MODEL_DIR_ENV",
    "REQUEST_ID_HEADER",
    "TIMEOUT_FIX_INSTALLED",
    "ChampionModel",
    "Prediction",
    "PredictionIdHeader",
    "Predictor",
    "RequestSizeLimit",
    "max_request_bytes",
]

MODEL_DIR_ENV = "PAVED_MODEL_DIR"
DEFAULT_MODEL_DIR = DEFAULT_DIR
MAX_ROWS = 1000
#: The largest request body the service reads by default (1 MiB: MAX_ROWS rows of ~100
#: features); PAVED_MAX_REQUEST_BYTES sets another.
MAX_REQUEST_BYTES = 1 << 20
MAX_REQUEST_BYTES_ENV = "PAVED_MAX_REQUEST_BYTES"

#: Whether BentoML's request-timeout middleware was replaced (see _bentoml_fix).
TIMEOUT_FIX_INSTALLED = _bentoml_fix.install()

_NUMERIC = {"double", "float", "integer", "long", "boolean"}
#: The numpy dtype of each MLflow column type ("integer" is 32-bit, "float" too).
_DTYPES = {
    "double": "float64",
    "float": "float32",
    "integer": "int32",
    "long": "int64",
    "boolean": "bool",
    "string": "str",
}

#: The response header that carries the request's id (each row's id starts with it).
REQUEST_ID_HEADER = "Paved-Request-Id"
#: Where a request's predictor leaves its request id for `PredictionIdHeader` to send: a
#: list made per request, shared (not copied) by the tasks and threads the call runs in.
_REQUEST_IDS: ContextVar[list[str] | None] = ContextVar("paved_request_ids", default=None)

logger = logging.getLogger(__name__)


class Prediction(BaseModel):
    """A response: one prediction per input row, their ids, and which model made them.

    A classifier's predictions are its class labels (the values of the training data's
    target); where it has them, `probabilities` gives each row's probability per label.
    `prediction_ids` are what labels sent back later are joined on (a service from a
    release before them answers without).
    """

    predictions: list[Any]
    probabilities: list[dict[str, float]] | None = None
    prediction_ids: list[str] | None = None
    model_name: str
    model_version: str


@dataclass(frozen=True)
class ChampionModel:
    """The champion model folder: its signature, its request model, and how to load it.

    With a `contract`, the request model is the contract's (types, ranges, allowed values),
    and the champion must have been trained on the contract's input columns.
    """

    model_dir: Path
    contract: Contract | None = None

    @classmethod
    def from_env(cls, *, contract: Contract | None = None) -> ChampionModel:
        """The folder named by PAVED_MODEL_DIR, else models/champion under the working dir."""
        return cls(Path(os.environ.get(MODEL_DIR_ENV) or DEFAULT_MODEL_DIR), contract)

    @cached_property
    def metadata(self) -> dict[str, Any]:
        """The MLmodel file, read as YAML.

        Reading it without importing MLflow keeps `bentoml serve`'s own process light; the
        service image has no MLflow at all (see paved_ml.champion).
        """
        return read_mlmodel(self.model_dir)

    @property
    def flavors(self) -> dict[str, Any]:
        """The model's MLflow flavours (sklearn, python_function, ...)."""
        return dict(self.metadata.get("flavors") or {})

    @cached_property
    def features(self) -> list[str]:
        """The input column names, in signature order."""
        return [str(column["name"]) for column in self._input_columns]

    @cached_property
    def row_model(self) -> type[BaseModel]:
        """A strict pydantic model of one input row: the contract's, else from the signature.

        A contract whose input columns are not the ones the champion was trained on is a
        PavedMLError: the service would accept rows the model cannot read.
        """
        if self.contract is not None:
            declared, trained = sorted(self.contract.features), sorted(self.features)
            if declared != trained:
                raise PavedMLError(
                    f"the contract's input columns {declared} are not the champion's {trained}:"
                    " retrain (`dvc repro`) after changing the contract's columns"
                )
            return self.contract.row_model
        fields = []
        for column in self._input_columns:
            kind = column["type"]
            if kind not in _DTYPES:
                raise PavedMLError(f"column '{column['name']}' has unsupported type '{kind}'")
            nullable = not column.get("required", True)
            fields.append(RowField(str(column["name"]), _DTYPES[kind], nullable=nullable))
        return build_row_model(fields)

    def load(self, *, warm_up: bool = True) -> Predictor:
        """Load the model; by default warm it up and freeze the heap it leaves behind.

        The predictor records what it serves in the prediction log when PAVED_PREDICTION_LOG
        is set (see paved_ml.prediction_log); the warm-up is not recorded.
        """
        predictor = Predictor(self)
        if warm_up:
            predictor.warm_up()
        predictor.log = PredictionLog.from_env(
            model_name=predictor.loaded.model_name, model_version=predictor.loaded.version
        )
        if predictor.log is not None:
            predictor.log.on_problem = _log_problems_metric()
        return predictor

    @cached_property
    def _input_columns(self) -> list[dict[str, Any]]:
        inputs = (self.metadata.get("signature") or {}).get("inputs")
        if not inputs:
            raise PavedMLError(f"the model in {self.model_dir} has no input signature")
        columns: list[dict[str, Any]] = json.loads(inputs)
        if not all("name" in column and "type" in column for column in columns):
            raise PavedMLError(f"the model in {self.model_dir} needs a column-based signature")
        return columns


class Predictor:
    """A loaded champion that turns validated rows into a Prediction.

    `warm_up_error` is None until a warm-up fails, then the exception it raised: a
    service reports itself not ready while it is set (see `ready`).
    """

    def __init__(self, champion: ChampionModel) -> None:
        self.champion = champion
        self.warm_up_error: Exception | None = None
        #: Where served predictions are recorded (None: not recorded).
        self.log: PredictionLog | None = None
        # The native flavour skips pyfunc's per-call schema enforcement: the request model
        # has already enforced the schema, more strictly.
        #: The champion as loaded (paved_ml.champion): model, name, version, labels.
        self.loaded = load_champion(champion.model_dir)
        self._name, self._version = self.loaded.model_name, self.loaded.version
        self._features = champion.features
        self._labels = self.loaded.labels
        self._sklearn = "sklearn" in champion.flavors
        self._numeric = self._sklearn and all(
            column["type"] in _NUMERIC for column in champion._input_columns
        )
        if self._sklearn:
            _sklearn_fix.install()

    def predict_frame(self, frame: pd.DataFrame) -> list[Any]:
        """Predict from a frame with the signature's columns."""
        return self._predict(frame[self._features])[0]

    def predict(self, rows: Sequence[BaseModel]) -> Prediction:
        """Predict one value per row; each gets an id, `<request id>-<row>`."""
        request = os.urandom(16).hex()
        ids = [f"{request}-{row}" for row in range(len(rows))]
        sent = _REQUEST_IDS.get()
        if sent is not None:
            sent.append(request)
        if self._numeric:
            # Validated numeric rows go straight to the estimator as an array, in signature
            # order: a pandas frame per request costs several times the prediction itself.
            array = np.array([[getattr(row, name) for name in self._features] for row in rows])
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="X does not have valid feature names")
                values, probabilities = self._predict(array, validated=True)
            if self.log is not None:
                self.log.record(dict(zip(self._features, array.T, strict=True)), values, ids)
        else:
            import pandas as pd

            frame = pd.DataFrame([row.model_dump() for row in rows], columns=self._features)
            values, probabilities = self._predict(frame[self._features], validated=True)
            if self.log is not None:
                columns = {name: frame[name].to_numpy() for name in self._features}
                self.log.record(columns, values, ids)
        # Built from values this method made itself: nothing for pydantic to check.
        return Prediction.model_construct(
            predictions=values,
            probabilities=probabilities,
            prediction_ids=ids,
            model_name=self._name,
            model_version=self._version,
        )

    def _predict(
        self, inputs: Any, *, validated: bool = False
    ) -> tuple[list[Any], list[dict[str, float]] | None]:
        """The rows' labels, and a classifier's probabilities per label, from one model call.

        Rows `validated` by a request model that refuses every null and non-finite number
        are all finite: scikit-learn is told not to look for them again (`assume_finite`).
        """
        if validated and self._finite:
            import sklearn

            with sklearn.config_context(assume_finite=True):
                values, probabilities = self.loaded.predict(inputs)
        else:
            values, probabilities = self.loaded.predict(inputs)
        if self._labels is None:
            return _as_list(values), None
        rows = probabilities.tolist()
        return values.tolist(), [dict(zip(self._labels, row, strict=True)) for row in rows]

    @cached_property
    def _finite(self) -> bool:
        """Whether every row reaching scikit-learn is all finite: no field takes a null."""
        if not self._sklearn:
            return False
        try:
            fields = self.champion.row_model.model_fields.values()
        except PavedMLError:
            return False
        return all(info.is_required() for info in fields)

    def close(self) -> None:
        """Write what the prediction log holds (call it from the service's shutdown hook)."""
        if self.log is not None:
            self.log.close()

    @property
    def ready(self) -> bool:
        """Whether the warm-up prediction succeeded (or has not been tried)."""
        return self.warm_up_error is None

    def warm_up(self) -> None:
        """Run one prediction, then collect and freeze the heap.

        Importing mlflow, pandas and scikit-learn leaves a few hundred thousand objects
        tracked by the collector; a full collection over them stalls the event loop for
        ~150 ms every few hundred requests. Freezing them after start-up removes the stall.
        The warm-up also checks that the array path agrees with the frame path (a pipeline
        that selects columns by name would not), and serves through frames if it does not.

        The example row is all zeros (False, None for optional columns). If the model fails
        on it, the failure is logged and kept in `warm_up_error` instead of raised, so the
        service still starts (and can be inspected) but reports itself not ready; it then
        serves through frames, the path that does not depend on the warm-up's check.
        """
        example = {
            name: info.annotation() if isinstance(info.annotation, type) else None
            for name, info in self.champion.row_model.model_fields.items()
        }
        import pandas as pd

        try:
            expected = self.predict_frame(pd.DataFrame([example], columns=self._features))
        except Exception as error:
            self.warm_up_error = error
            self._numeric = False
            logger.exception(
                "warm-up prediction of model %s version %s failed on the example row %s: "
                "the service starts but reports itself not ready",
                self._name,
                self._version,
                example,
            )
        else:
            if self._numeric:
                try:
                    row = self.champion.row_model(**example)
                    self._numeric = self.predict([row]).predictions == expected
                except Exception:
                    self._numeric = False
        gc.collect()
        gc.freeze()


def _as_list(result: Any) -> list[Any]:
    values: list[Any] = result.tolist() if hasattr(result, "tolist") else list(result)
    return values


def max_request_bytes() -> int:
    """The request body limit: PAVED_MAX_REQUEST_BYTES (bytes) if set, else MAX_REQUEST_BYTES.

    A value that is not a whole number above 0 is a PavedMLError naming the variable, so a
    service with a mistyped limit refuses to start instead of serving without one.
    """
    raw = os.environ.get(MAX_REQUEST_BYTES_ENV, "").strip()
    if not raw:
        return MAX_REQUEST_BYTES
    if not raw.isdigit() or int(raw) == 0:
        raise PavedMLError(
            f"{MAX_REQUEST_BYTES_ENV}={raw!r}: give the largest request body the service "
            "reads, in bytes (a whole number above 0)"
        )
    return int(raw)


class RequestSizeLimit:
    """ASGI middleware: a body over `max_bytes` is answered 413 before the service parses it.

    BentoML 1.4 has no body limit of its own. A declared Content-Length over the limit is
    refused before a byte of the body is read; a body without one (chunked) is read up to
    the limit and refused as soon as it goes past it. The body is then handed on unchanged.
    `max_bytes` defaults to `max_request_bytes()` (PAVED_MAX_REQUEST_BYTES, else 1 MiB).
    """

    def __init__(self, app: Any, *, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_request_bytes() if max_bytes is None else max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Refuse an oversized body with 413; hand any other request on unchanged."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        messages: list[dict[str, Any]] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> dict[str, Any]:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(
            {"error": f"request body over {self.max_bytes} bytes: send fewer rows per request"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class PredictionIdHeader:
    """ASGI middleware: the `Paved-Request-Id` header on each answer that made predictions.

    The request's predictions have the ids `<that id>-<row>` (the body's `prediction_ids`).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Run the request with a place for its id; add the header when the answer starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent: list[str] = []
        token = _REQUEST_IDS.set(sent)

        async def with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and sent:
                header = (REQUEST_ID_HEADER.lower().encode(), sent[-1].encode())
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        try:
            await self.app(scope, receive, with_id)
        finally:
            _REQUEST_IDS.reset(token)


@cache
def _log_problems_metric() -> Callable[[str, int], None]:
    """`paved_prediction_log_problems_total{kind}`, on the service's /metrics.

    prometheus_client is imported here, when the model loads in a worker, not with this
    module: BentoML sets up its multiprocess metrics only once the worker has started.
    """
    from prometheus_client import Counter

    counter = Counter(
        "paved_prediction_log_problems",
        "What the prediction log could not do: unwritable rows, dropped rows, deleted files",
        ["kind"],
    )
    return lambda kind, count: counter.labels(kind=kind).inc(count)
