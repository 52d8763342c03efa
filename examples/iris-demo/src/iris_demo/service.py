"""The Iris Demo model service: serves the champion (models/champion) with BentoML.

Run `uv run bentoml serve` from the repo root. The request body is
`{"rows": [{<feature>: <value>, ...}, ...]}`; the row fields come from the data contract,
and any unknown, missing, mistyped or out-of-range field is answered with a 400 naming it.
The answer holds each row's predicted label, its probability per label and its id
(`prediction_ids`, `<request id>-<row>`; the request id is also the `Paved-Request-Id`
header): send labels back by those ids, `paved-ml feedback`.
"""

from typing import Annotated

import bentoml
from paved_ml.serving import (
    MAX_ROWS,
    ChampionModel,
    Prediction,
    PredictionIdHeader,
    RequestSizeLimit,
)
from pydantic import Field

from iris_demo.contract import CONTRACT

# The request model is the data contract's input columns, with their types, ranges and
# allowed values (src/iris_demo/contract.py).
CHAMPION = ChampionModel.from_env(contract=CONTRACT)
Row = CHAMPION.row_model


@bentoml.service(name="iris-demo", traffic={"timeout": 10})
class IrisDemoService:
    """Predicts with the champion model for one or many rows."""

    def __init__(self) -> None:
        # A champion that fails its warm-up prediction is logged, not raised: the service
        # starts, /livez answers 200 and /readyz 503 (see __is_ready__).
        self.predictor = CHAMPION.load()

    async def __is_ready__(self) -> bool:
        """BentoML's readiness hook (/readyz): not ready while the warm-up has failed."""
        return self.predictor.ready

    @bentoml.on_shutdown
    def close(self) -> None:
        """Write what the prediction log still holds (PAVED_PREDICTION_LOG; off if unset)."""
        self.predictor.close()

    # `async`: the champion predicts in well under a millisecond, so it runs on the event
    # loop instead of paying a thread hop per request, and paved-ml answers its JSON calls
    # without BentoML's per-call IO layer (docs/decisions in the platform repo, 0025). A
    # model that takes longer per call should drop `async` (BentoML then runs it in a
    # thread pool).
    @bentoml.api
    async def predict(
        self,
        rows: Annotated[list[Row], Field(min_length=1, max_length=MAX_ROWS)],  # type: ignore[valid-type]
    ) -> Prediction:
        """One prediction per row, with the champion's name and version."""
        return self.predictor.predict(rows)


# Bodies over 1 MiB (or PAVED_MAX_REQUEST_BYTES, in bytes) are answered 413 unread.
IrisDemoService.add_asgi_middleware(RequestSizeLimit)
# Each answer with predictions carries the request's id in the Paved-Request-Id header.
IrisDemoService.add_asgi_middleware(PredictionIdHeader)
