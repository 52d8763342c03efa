"""The fleet: every team repo of a platform, seen (`paved status`) and updated together.

`sources` finds the repos (a folder tree, a manifest of git URLs, a GitHub organisation),
`status` reads where each stands; both call the same per-repo functions as the single-repo
commands (`paved.repo`, `paved.releases`, `paved.update`, `paved.checks`), never copies of them.
"""

from paved.fleet.sources import RepoRef, find_repos
from paved.fleet.status import RepoStatus, StatusReport, fleet_status

__all__ = ["RepoRef", "RepoStatus", "StatusReport", "find_repos", "fleet_status"]
