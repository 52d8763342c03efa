"""Values with one home: every copy elsewhere is generated from these, or checked against them.

The copies that cannot import this module (the stdlib-only bootstrap `ci/dev.py`, the
reusable workflows, paved-ml's start-up file) are checked by `tests/test_constants.py`.
"""

from __future__ import annotations

__all__ = ["ALERT_LABEL", "TELEMETRY_OFF"]

#: Telemetry off for every tool a team repo runs: set in its CI, its image, `paved ci
#: check`'s steps, and at Python start-up by paved-ml; `paved check` (PV004) refuses a
#: workflow that turns one back on.
TELEMETRY_OFF = {
    "BENTOML_DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
}

#: The label of every monitoring issue (`paved.monitor`); one open issue per model carries
#: it, and `paved status` counts them as the repo's open alerts.
ALERT_LABEL = "paved-monitoring"
