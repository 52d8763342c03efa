"""What the tracking server knows of each team repo's model, in a bounded number of calls.

`paved status --tracking URI` asks MLflow's REST API, never MLflow itself (the platform CLI
does not install it), and asks for the whole fleet at once: the number of calls grows with
the pages of answers, not with the repos (a call costs the server tens of milliseconds
whatever it returns, so a call per model would not scale to a fleet). In order:

1. the experiments, and the registered models with their aliases (`champion`, `staging`,
   `production`): one paged search each;
2. every model version (one paged search): each model's count, and its newest `HISTORY`,
   whose training runs give the gate's metric (the sparkline) and the champion's age;
3. those training runs, by id (`attributes.run_id IN (...)`, `RUN_IDS_PER_CALL` a call);
4. the monitoring runs `paved_ml.tracking.log_monitoring` logged in the last
   `MONITORING_DAYS` days, newest first, one paged search per kind (`drift`, `accuracy`):
   the latest of each kind per model. An older check is not shown: it says nothing of now.

The login comes from the environment as MLflow's clients read it: `MLFLOW_TRACKING_TOKEN`,
or `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`; it is sent over https only
(plain http to this machine).
"""

from __future__ import annotations

import base64
import json
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

__all__ = ["HISTORY", "MONITORING_DAYS", "ModelFacts", "TrackingServer", "tracking_server"]

#: The versions read per model: the sparkline's points.
HISTORY = 20
#: Training runs asked for by id in one call.
RUN_IDS_PER_CALL = 200
#: How far back a monitoring check counts.
MONITORING_DAYS = 35
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

    def registered(self) -> dict[str, dict[str, str]]:
        """Every registered model's aliases (alias: version) by name, in pages of 1000."""
        found: dict[str, dict[str, str]] = {}
        for model in self._pages("registered-models/search", "registered_models", post=False):
            aliases = model.get("aliases", [])
            found[str(model.get("name"))] = {
                str(alias.get("alias")): str(alias.get("version")) for alias in aliases
            }
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
        experiments = self.experiments()
        facts = {name: ModelFacts(name=name) for name in models}
        for name, aliases in self.registered().items():
            if name in facts:
                facts[name].champion = aliases.get("champion", "")
                facts[name].staging = aliases.get("staging", "")
                facts[name].production = aliases.get("production", "")
        history = self._versions(facts, moment)
        ids = sorted({experiments[name] for name in models.values() if name in experiments})
        if ids:
            self._figures(ids, history, facts)
            self._monitoring(ids, facts, moment)
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

    def _figures(
        self,
        experiments: list[str],
        history: dict[str, list[dict[str, Any]]],
        facts: dict[str, ModelFacts],
    ) -> None:
        """The gate's figure of each version read, from its training run."""
        wanted = sorted(
            {str(v["run_id"]) for vs in history.values() for v in vs if v.get("run_id")}
        )
        figures: dict[str, tuple[str, float | None]] = {}
        for start in range(0, len(wanted), RUN_IDS_PER_CALL):
            listed = ", ".join(f"'{_quoted(i)}'" for i in wanted[start : start + RUN_IDS_PER_CALL])
            for run in self._runs(experiments, f"attributes.run_id IN ({listed})"):
                figures[str(run["info"]["run_id"])] = _gate_figure(run)
        for name, versions in history.items():
            for version in versions:
                metric, value = figures.get(str(version.get("run_id")), ("", None))
                if value is not None:
                    facts[name].history.append(value)
                if str(version.get("version")) == facts[name].champion:
                    facts[name].metric, facts[name].value = metric, value

    def _monitoring(
        self, experiments: list[str], facts: dict[str, ModelFacts], moment: float
    ) -> None:
        """The latest check of each kind per model, within MONITORING_DAYS."""
        since = int((moment - MONITORING_DAYS * 86400) * 1000)
        for kind in MONITORING_KINDS:
            condition = f"tags.`paved.monitoring.kind` = '{kind}' AND attributes.start_time >= "
            newest = self._runs(
                experiments, f"{condition}{since}", order_by=["attributes.start_time DESC"]
            )
            for run in newest:
                tags = _tags(run)
                name = tags.get("paved.monitoring.model_name", "")
                if name not in facts or kind in facts[name].monitoring:
                    continue  # another team's, or older than the one already read
                failed = tags.get("paved.monitoring.failed") == "true"
                started = int(run["info"].get("start_time", 0)) / 1000
                facts[name].monitoring[kind] = {
                    "state": "failed" if failed else "passed",
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                    "version": tags.get("paved.monitoring.model_version", ""),
                }

    def _runs(
        self, experiments: list[str], condition: str, *, order_by: list[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every run of `experiments` that meets `condition`, a page of 1000 at a time."""
        fields: dict[str, Any] = {
            "experiment_ids": experiments,
            "filter": condition,
            "run_view_type": "ACTIVE_ONLY",
        }
        if order_by:
            fields["order_by"] = order_by
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


def _tags(run: Mapping[str, Any]) -> dict[str, str]:
    pairs = run.get("data", {}).get("tags", [])
    return {str(tag.get("key")): str(tag.get("value")) for tag in pairs}


def _gate_figure(run: Mapping[str, Any]) -> tuple[str, float | None]:
    """The metric the champion gate judged this version's run by, and its value."""
    metric = _tags(run).get("paved.gate.metric", "")
    figures = {
        str(item.get("key")): item.get("value") for item in run.get("data", {}).get("metrics", [])
    }
    for key in (f"paved.gate.challenger.{metric}", metric):
        value = figures.get(key)
        if metric and isinstance(value, int | float):
            return metric, float(value)
    return metric, None
