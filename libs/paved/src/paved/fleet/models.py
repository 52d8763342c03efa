"""What the tracking server knows of each team repo's model, in a bounded number of calls.

`paved status --tracking URI` asks MLflow's REST API, never MLflow itself (the platform CLI
does not install it), and asks for the whole fleet at once: the number of calls grows with
the pages of answers, not with the repos. A call costs an MLflow server tens of
milliseconds whatever it returns, and a search of runs far more per run than a search of
versions, so the facts are read where paved-ml writes them for this view:

1. the registered models (one paged search): the aliases `champion`, `staging` and
   `production`, and the tags `paved.monitoring.drift` / `.accuracy`, the latest check of
   each kind (`paved_ml.tracking.log_monitoring` sets them);
2. every model version (one paged search): each model's count, the champion's age, and the
   newest `HISTORY` versions' tags `paved.gate.metric` and `paved.gate.value`, the figure
   the champion gate judged each by (`paved_ml.registry` sets them): the sparkline;
3. only for versions registered before paved-ml tagged them: their training runs, by id
   (`RUN_IDS_PER_CALL` a call, in the experiments found by one more paged search).

The login comes from the environment as MLflow's clients read it: `MLFLOW_TRACKING_TOKEN`,
or `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`; it is sent over https only
(plain http to this machine).
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from paved._credentials import redact
from paved._errors import PavedError, ServiceRefusal

__all__ = ["HISTORY", "ModelFacts", "TrackingServer", "tracking_server"]

#: The versions read per model: the sparkline's points.
HISTORY = 20
#: Training runs asked for by id in one call.
RUN_IDS_PER_CALL = 200
MONITORING_KINDS = ("drift", "accuracy")
_TIMEOUT = 30
_MAX_BYTES = 32 << 20
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class ModelFacts:
    """One registered model, as a fleet row shows it."""

    name: str
    #: The versions the tracking server holds (0: the model is not registered).
    versions: int = 0
    champion: str = ""
    metric: str = ""
    value: float | None = None
    #: Days since the champion's version was registered.
    champion_age_days: float | None = None
    #: The versions behind the deploy environments' aliases.
    staging: str = ""
    production: str = ""
    #: The gate's metric of each version read, oldest first.
    history: list[float] = field(default_factory=list)
    #: Per kind ("drift", "accuracy"): "passed" or "failed", and when (UTC, ISO).
    monitoring: dict[str, dict[str, str]] = field(default_factory=dict)
    error: str = ""


def tracking_server(uri: str | None, env: Mapping[str, str]) -> TrackingServer | None:
    """The server `uri` names, else `MLFLOW_TRACKING_URI` when it is a server's URL; or None."""
    if uri is None:
        found = env.get("MLFLOW_TRACKING_URI", "")
        if not found.startswith(("http://", "https://")):
            return None
        uri = found
    return TrackingServer(uri, env)


class TrackingServer:
    """An MLflow tracking server's REST API, counting the calls made."""

    def __init__(self, uri: str, env: Mapping[str, str]) -> None:
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise PavedError(f"tracking URI {redact(uri)!r}: give the server's http(s) URL")
        self.uri = uri.rstrip("/")
        self.calls = 0
        self._lock = threading.Lock()
        self._headers = {"Content-Type": "application/json", "User-Agent": "paved"}
        token = env.get("MLFLOW_TRACKING_TOKEN")
        user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif user and password:
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {basic}"
        if "Authorization" in self._headers and not (
            parts.scheme == "https" or parts.hostname in _LOOPBACK
        ):
            raise PavedError(
                f"tracking URI {redact(uri)!r}: a login goes to https URLs only (or loopback)"
            )

    def experiments(self) -> dict[str, str]:
        """Every experiment's id by name, in pages of 1000."""
        found: dict[str, str] = {}
        pages = self._pages("experiments/search", "experiments", post=True, view_type="ACTIVE_ONLY")
        for page in pages:
            found[str(page.get("name"))] = str(page.get("experiment_id"))
        return found

    def registered(self) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
        """Every registered model's aliases (alias: version) and tags, by name."""
        found: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        for model in self._pages("registered-models/search", "registered_models", post=False):
            aliases = {
                str(alias.get("alias")): str(alias.get("version"))
                for alias in model.get("aliases", [])
            }
            found[str(model.get("name"))] = (aliases, _pairs(model.get("tags", [])))
        return found

    def _pages(
        self, endpoint: str, key: str, *, post: bool, **fields: Any
    ) -> Iterator[dict[str, Any]]:
        """Every item under `key` of each page (MLflow takes some searches as GET only)."""
        token = ""
        while True:
            payload: dict[str, Any] = {"max_results": 1000, **fields}
            if token:
                payload["page_token"] = token
            if post:
                answer = self._call(endpoint, payload)
            else:
                answer = self._call(endpoint, query={k: str(v) for k, v in payload.items()})
            yield from answer.get(key, [])
            token = str(answer.get("next_page_token") or "")
            if not token:
                return

    def read(self, models: Mapping[str, str], *, now: float | None = None) -> dict[str, ModelFacts]:
        """The facts of each model in `models` (model name: its experiment's name)."""
        moment = now if now is not None else time.time()
        facts = {name: ModelFacts(name=name) for name in models}
        for name, (aliases, tags) in self.registered().items():
            if name not in facts:
                continue  # another team's model
            facts[name].champion = aliases.get("champion", "")
            facts[name].staging = aliases.get("staging", "")
            facts[name].production = aliases.get("production", "")
            for kind in MONITORING_KINDS:
                latest = _monitoring(tags.get(f"paved.monitoring.{kind}", ""))
                if latest:
                    facts[name].monitoring[kind] = latest
        history = self._versions(facts, moment)
        untagged = [
            version
            for versions in history.values()
            for version in versions
            if "paved.gate.value" not in _pairs(version.get("tags", [])) and version.get("run_id")
        ]
        figures = self._run_figures(untagged, models) if untagged else {}
        for name, versions in history.items():
            for version in versions:
                tags = _pairs(version.get("tags", []))
                metric, value = (
                    tags.get("paved.gate.metric", ""),
                    _number(tags.get("paved.gate.value")),
                )
                if value is None:
                    metric, value = figures.get(str(version.get("run_id")), (metric, None))
                if value is not None:
                    facts[name].history.append(value)
                if str(version.get("version")) == facts[name].champion:
                    facts[name].metric, facts[name].value = metric, value
        return facts

    def _versions(
        self, facts: dict[str, ModelFacts], moment: float
    ) -> dict[str, list[dict[str, Any]]]:
        """Each model's newest HISTORY versions, oldest first; counts and the champion's age."""
        history: dict[str, list[dict[str, Any]]] = {name: [] for name in facts}
        for version in self._pages("model-versions/search", "model_versions", post=False):
            name = str(version.get("name"))
            if name in facts:
                facts[name].versions += 1
                history[name].append(version)
        for name, versions in history.items():
            versions.sort(key=lambda version: int(version.get("version", 0)))
            del versions[:-HISTORY]
            champion = [v for v in versions if str(v.get("version")) == facts[name].champion]
            created = int(champion[0].get("creation_timestamp") or 0) / 1000 if champion else 0
            if created:
                facts[name].champion_age_days = round((moment - created) / 86400, 1)
        return history

    def _run_figures(
        self, versions: list[dict[str, Any]], models: Mapping[str, str]
    ) -> dict[str, tuple[str, float | None]]:
        """The gate's figure of each of `versions` from its training run, by run id."""
        experiments = self.experiments()
        ids = sorted({experiments[name] for name in models.values() if name in experiments})
        wanted = sorted({str(version["run_id"]) for version in versions})
        figures: dict[str, tuple[str, float | None]] = {}
        for start in range(0, len(wanted) if ids else 0, RUN_IDS_PER_CALL):
            listed = ", ".join(f"'{_quoted(i)}'" for i in wanted[start : start + RUN_IDS_PER_CALL])
            for run in self._runs(ids, f"attributes.run_id IN ({listed})"):
                figures[str(run["info"]["run_id"])] = _gate_figure(run)
        return figures

    def _runs(self, experiments: list[str], condition: str) -> Iterator[dict[str, Any]]:
        """Every run of `experiments` that meets `condition`, a page of 1000 at a time."""
        fields = {
            "experiment_ids": experiments,
            "filter": condition,
            "run_view_type": "ACTIVE_ONLY",
        }
        return self._pages("runs/search", "runs", post=True, **fields)

    def _call(
        self,
        endpoint: str,
        payload: dict[str, Any] | None = None,
        *,
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        url = f"{self.uri}/api/2.0/mlflow/{endpoint}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            url, data=data, headers=self._headers, method="GET" if data is None else "POST"
        )
        with self._lock:
            self.calls += 1
        service = f"the tracking server {redact(self.uri)}"
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as answer:
                body = answer.read(_MAX_BYTES + 1)
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode("utf-8", "replace").strip()
            raise ServiceRefusal(service, exc.code, detail[:200] or str(exc.reason)) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise PavedError(f"{service} did not answer {endpoint}: {exc}") from exc
        if len(body) > _MAX_BYTES:
            raise PavedError(f"{service}: the answer to {endpoint} is over {_MAX_BYTES} bytes")
        try:
            found = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            raise PavedError(f"{service}: the answer to {endpoint} is not JSON") from exc
        if not isinstance(found, dict):
            raise PavedError(f"{service}: the answer to {endpoint} is not a JSON object")
        return found


def _quoted(text: str) -> str:
    """`text` inside MLflow's single-quoted filter string."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _pairs(items: object) -> dict[str, str]:
    """MLflow's `[{key, value}]` list as a dict."""
    if not isinstance(items, list):
        return {}
    return {
        str(item.get("key")): str(item.get("value")) for item in items if isinstance(item, dict)
    }


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _monitoring(text: str) -> dict[str, str]:
    """The latest check from a `paved.monitoring.<kind>` tag ({} if absent or unreadable)."""
    try:
        found = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    if not isinstance(found, dict) or found.get("state") not in {"passed", "failed"}:
        return {}
    return {key: str(found.get(key, "")) for key in ("state", "at", "version")}


def _gate_figure(run: Mapping[str, Any]) -> tuple[str, float | None]:
    """The metric the champion gate judged this version's run by, and its value."""
    metric = _pairs(run.get("data", {}).get("tags", [])).get("paved.gate.metric", "")
    figures = {
        str(item.get("key")): item.get("value") for item in run.get("data", {}).get("metrics", [])
    }
    for key in (f"paved.gate.challenger.{metric}", metric):
        value = figures.get(key)
        if metric and isinstance(value, int | float):
            return metric, float(value)
    return metric, None
