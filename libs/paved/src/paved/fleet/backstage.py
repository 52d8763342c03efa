"""`paved status --format backstage`: the fleet's facts as Backstage Tech Insights facts.

A Tech Insights fact retriever returns, per catalog entity, a set of typed facts; this is
that output, ready for a retriever that runs `paved status` (or reads its file) to return
as it is:

    {"id": "paved-status", "version": "0.1.0", "schema": {FACT: {"type", "description"}},
     "facts": [{"entity": {"namespace", "kind", "name"}, "timestamp", "facts": {FACT: value}}]}

The entity is the Component a team repo's `catalog-info.yaml` declares (its name is the
repo's `distribution_name`, in the default namespace). A repo that could not be read has no
entity to speak for and is left out. A fact with no value (no model, no check) is left out
of that entity's facts, as Tech Insights expects of facts it has not seen.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from paved.fleet.status import RepoStatus, StatusReport

__all__ = ["SCHEMA", "tech_insights"]

#: Every fact, its Tech Insights type and what it says.
SCHEMA: dict[str, dict[str, str]] = {
    "pavedRelease": {"type": "string", "description": "The Paved release the repo is on"},
    "pavedLatestRelease": {"type": "string", "description": "The latest Paved release"},
    "pavedReleasesBehind": {"type": "integer", "description": "Releases the repo is behind"},
    "pavedUpdatePending": {
        "type": "boolean",
        "description": "An update pull request or branch is open",
    },
    "pavedUpdateFailed": {
        "type": "boolean",
        "description": "The rollout's update of this repo failed (with a fleet record)",
    },
    "pavedCheckScore": {"type": "float", "description": "paved check's score, in percent"},
    "modelName": {"type": "string", "description": "The registered model"},
    "modelChampionVersion": {"type": "string", "description": "The champion's version"},
    "modelMetric": {"type": "string", "description": "The metric the champion gate uses"},
    "modelMetricValue": {"type": "float", "description": "The champion's figure of it"},
    "modelChampionAgeDays": {"type": "float", "description": "Days since its registration"},
    "modelStagingVersion": {"type": "string", "description": "The version staging serves"},
    "modelProductionVersion": {"type": "string", "description": "The version production serves"},
    "monitoringDrift": {"type": "string", "description": "The latest drift check: passed/failed"},
    "monitoringAccuracy": {
        "type": "string",
        "description": "The latest accuracy check: passed/failed",
    },
    "openAlerts": {"type": "integer", "description": "Open monitoring alert issues"},
}


def tech_insights(report: StatusReport, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The report as one Tech Insights retriever's output (see the module's docstring)."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    from paved import __version__

    facts = [
        {
            "entity": {"namespace": "default", "kind": "component", "name": row.names[0]},
            "timestamp": stamp,
            "facts": _facts(row),
        }
        for row in report.repos
        if not row.error and row.names[0]
    ]
    return {"id": "paved-status", "version": __version__, "schema": SCHEMA, "facts": facts}


def _facts(row: RepoStatus) -> dict[str, Any]:
    model = row.model
    monitoring = model.monitoring if model else {}
    found: dict[str, Any] = {
        "pavedRelease": row.current,
        "pavedLatestRelease": row.latest,
        "pavedReleasesBehind": row.behind,
        "pavedUpdatePending": bool(row.pending),
        "pavedUpdateFailed": None if row.update is None else row.update.get("outcome") == "failed",
        "pavedCheckScore": row.score,
        "modelName": model.name if model else None,
        "modelChampionVersion": model.champion if model else None,
        "modelMetric": model.metric if model else None,
        "modelMetricValue": model.value if model else None,
        "modelChampionAgeDays": model.champion_age_days if model else None,
        "modelStagingVersion": model.staging if model else None,
        "modelProductionVersion": model.production if model else None,
        "monitoringDrift": monitoring.get("drift", {}).get("state"),
        "monitoringAccuracy": monitoring.get("accuracy", {}).get("state"),
        "openAlerts": row.alerts,
    }
    return {key: value for key, value in found.items() if value not in (None, "")}
