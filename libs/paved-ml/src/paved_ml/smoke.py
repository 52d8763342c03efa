"""The smoke test after a deploy: the contract's example rows, sent to the running service.

`paved-ml smoke URL` checks three things, and passes only if all three hold:

- `POST /predict` with every example row answers 200 in the declared shape (the service's
  `Prediction`: one prediction per row, the model's name and version);
- every prediction is a valid value of the contract's target (its type, range, labels);
- the 99th percentile of single-row requests (the examples in turn) is within the budget
  `deploy.smoke_p99_ms` in params.yaml.

Each overlay runs it as an Argo CD PostSync hook Job, from the service's own image, so a
failed smoke fails the sync.
"""

from __future__ import annotations

import http.client
import json
import math
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from paved_ml.contract import Contract, ContractError
from paved_ml.errors import PavedMLError
from paved_ml.serving import Prediction

__all__ = ["DEFAULT_P99_MS", "DEFAULT_REQUESTS", "SmokeCheck", "SmokeReport", "p99_budget", "smoke"]

#: The p99 budget when params.yaml sets none: a warm service answers in a few ms; this
#: leaves room for the cluster's network and a cold start.
DEFAULT_P99_MS = 250.0
#: Single-row requests timed for the p99 (the examples in turn).
DEFAULT_REQUESTS = 100


@dataclass(frozen=True)
class SmokeCheck:
    """One of the three checks: its name, whether it held, and what was seen."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class SmokeReport:
    """What the smoke test found at `url`."""

    url: str
    checks: list[SmokeCheck]

    @property
    def ok(self) -> bool:
        """Whether every check held."""
        return all(check.ok for check in self.checks)


def p99_budget(params: Mapping[str, Any]) -> float:
    """`deploy.smoke_p99_ms` from params.yaml (milliseconds), else DEFAULT_P99_MS."""
    deploy = params.get("deploy") or {}
    if not isinstance(deploy, Mapping):
        raise PavedMLError("params.yaml: deploy must be a mapping")
    value = deploy.get("smoke_p99_ms", DEFAULT_P99_MS)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise PavedMLError(f"params.yaml: deploy.smoke_p99_ms={value!r}: give milliseconds above 0")
    return float(value)


def smoke(
    url: str,
    contract: Contract,
    *,
    p99_ms: float,
    requests: int = DEFAULT_REQUESTS,
    timeout: float = 10.0,
) -> SmokeReport:
    """Send the contract's examples to the service at `url`; see the module's docstring."""
    examples = _examples(contract)
    client = _Client(url, timeout)
    checks: list[SmokeCheck] = []
    try:
        status, body = client.post("/predict", {"rows": examples})
    except OSError as exc:
        return SmokeReport(url, [SmokeCheck("answer", False, f"no answer from {url}: {exc}")])
    try:
        answer = Prediction.model_validate(body) if status == 200 else None
    except ValidationError as exc:
        detail = f"200, but not a Prediction: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}"
        return SmokeReport(url, [SmokeCheck("answer", False, detail)])
    if answer is None or len(answer.predictions) != len(examples):
        found = f"{len(answer.predictions)} predictions" if answer else f"status {status}: {body}"
        checks.append(SmokeCheck("answer", False, f"{found} for {len(examples)} rows"))
        return SmokeReport(url, checks)
    checks.append(
        SmokeCheck(
            "answer",
            True,
            f"200, {len(examples)} predictions from {answer.model_name} v{answer.model_version}",
        )
    )
    try:
        contract.validate_predictions(answer.predictions)
        checks.append(SmokeCheck("labels", True, f"valid for '{contract.target}'"))
    except ContractError as exc:
        checks.append(
            SmokeCheck("labels", False, str(exc).replace("data breaks", "predictions break"))
        )
    checks.append(_latency(client, examples, requests=requests, p99_ms=p99_ms))
    return SmokeReport(url, checks)


def _examples(contract: Contract) -> list[dict[str, Any]]:
    """The contract's example rows, checked against its inputs (a bad one is a contract bug)."""
    import pandas as pd

    if not contract.examples:
        raise PavedMLError(
            "the contract has no examples: give Contract(..., examples=[{...}]) a few input rows"
        )
    rows = [dict(row) for row in contract.examples]
    try:
        contract.validate_inputs(pd.DataFrame(rows))
    except (ContractError, KeyError) as exc:
        raise PavedMLError(f"the contract's examples break the contract: {exc}") from exc
    return rows


def _latency(
    client: _Client, rows: Sequence[dict[str, Any]], *, requests: int, p99_ms: float
) -> SmokeCheck:
    seconds: list[float] = []
    for index in range(max(requests, 1)):
        started = time.perf_counter()
        try:
            status, _ = client.post("/predict", {"rows": [rows[index % len(rows)]]})
        except OSError as exc:
            return SmokeCheck("p99", False, f"request {index + 1} failed: {exc}")
        seconds.append(time.perf_counter() - started)
        if status != 200:
            return SmokeCheck("p99", False, f"request {index + 1} answered {status}")
    seconds.sort()
    p99 = seconds[min(len(seconds) - 1, math.ceil(0.99 * len(seconds)) - 1)] * 1000
    verdict = "within" if p99 <= p99_ms else "over"
    return SmokeCheck(
        "p99",
        p99 <= p99_ms,
        f"{p99:.1f} ms over {len(seconds)} requests, {verdict} the {p99_ms:g} ms budget",
    )


class _Client:
    """One kept-alive HTTP(S) connection to the service (what a client in the cluster has)."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PavedMLError(f"{url!r} is not an http(s) URL")
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self.prefix = parts.path.rstrip("/")
        self.connection = kind(parts.hostname, parts.port, timeout=timeout)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        data = json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        try:
            self.connection.request("POST", self.prefix + path, body=data, headers=headers)
            response = self.connection.getresponse()
        except (http.client.HTTPException, OSError):  # a dropped keep-alive: once more
            self.connection.close()
            self.connection.request("POST", self.prefix + path, body=data, headers=headers)
            response = self.connection.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode(errors="replace")[:200]
