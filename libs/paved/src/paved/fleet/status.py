"""`paved status`: where every team repo of a fleet stands against its template's releases.

One row per repo: template source, current release, latest release, releases behind, the
pending update branch or pull request, and the conformance score (`paved check`). The
releases come from one `git ls-remote --tags` per template source, never a clone per repo;
a remote repo is read from a shallow clone (or, for GitHub without the score, through the
API), a local one where it is. With a tracking server, each row also has its model's facts
(`paved.fleet.models`).
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paved._credentials import redact
from paved._errors import ExitCode, PavedError, one_line
from paved.checks import check_repo
from paved.constants import ALERT_LABEL
from paved.fleet.github import GitHub
from paved.fleet.models import ModelFacts, TrackingServer
from paved.fleet.sources import RepoRef, branch_tip, clone_shallow, find_repos, local_tip
from paved.releases import base_version, latest, release_commits, release_version, update_branch
from paved.repo import ANSWERS_FILE, TeamRepo, parse_answers, read_answers, tool_paved

__all__ = ["RepoStatus", "StatusReport", "fleet_status", "show_status"]


@dataclass
class RepoStatus:
    """One repo's row."""

    name: str
    location: str
    #: The team answer the repo was generated with.
    team: str = ""
    source: str = ""
    current: str = ""
    latest: str = ""
    behind: int | None = None
    #: "pull request #12", "branch paved/update-v0.2.0", or "".
    pending: str = ""
    score: float | None = None
    #: What the tracking server knows of the repo's model (with `tracking` only).
    model: ModelFacts | None = None
    #: The rollout's outcome for this repo, from a fleet record (with `record` only):
    #: outcome, reason, to_release, pull_request.
    update: dict[str, str] | None = None
    #: Open monitoring alerts (issues labelled paved-monitoring; GitHub repos only).
    alerts: int | None = None
    error: str = ""
    #: The experiment and the registered model, as the repo names them.
    names: tuple[str, str] = field(default=("", ""), repr=False, compare=False)


@dataclass
class Tracking:
    """What reading the models cost: the server, its calls, the seconds."""

    uri: str
    calls: int
    models: int
    seconds: float

    @property
    def per_repo(self) -> float:
        """Calls per model read (the fleet-wide searches shared out)."""
        return self.calls / self.models if self.models else 0.0


@dataclass
class StatusReport:
    """Every repo's row, in the order found."""

    repos: list[RepoStatus]
    tracking: Tracking | None = None

    @property
    def behind(self) -> list[RepoStatus]:
        """The repos with a later release to take."""
        return [repo for repo in self.repos if repo.behind]

    @property
    def exit_code(self) -> ExitCode:
        """0 every repo is on its latest release, 1 some repo is behind or unreadable."""
        failed = self.behind or any(repo.error for repo in self.repos)
        return ExitCode.FAILED if failed else ExitCode.OK

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: the rows and the counts."""
        rows = []
        for repo in self.repos:
            row = asdict(repo)
            row.pop("names")
            rows.append(row)
        tracking = (
            None
            if self.tracking is None
            else {**asdict(self.tracking), "calls_per_repo": round(self.tracking.per_repo, 2)}
        )
        return {
            "repos": rows,
            "tracking": tracking,
            "behind": len(self.behind),
            "failed": sum(1 for repo in self.repos if repo.error),
            "exit_code": self.exit_code,
        }


def fleet_status(
    target: str,
    *,
    check: bool = True,
    jobs: int = 4,
    tracking: TrackingServer | None = None,
    record: Mapping[str, Any] | None = None,
) -> StatusReport:
    """The status of every repo `target` names (see `paved.fleet.sources`).

    With `tracking`, each readable row also gets its model's facts from that server; with
    `record` (a fleet record, `paved.fleet.rollout.read_record`), its rollout outcome.
    """
    repos = find_repos(target)
    github = GitHub() if any(ref.github for ref in repos) else None
    with tempfile.TemporaryDirectory(prefix="paved-status-") as scratch:
        folder = Path(scratch)
        rows: list[tuple[RepoStatus, Path | None]] = _parallel(
            jobs, [functools.partial(_read, ref, folder, github, check) for ref in repos]
        )
        sources = sorted({row.source for row, _ in rows if row.source})
        releases = dict(zip(sources, _parallel(jobs, [_releases(s) for s in sources]), strict=True))
        _parallel(
            jobs,
            [
                functools.partial(_finish, row, ref, path, releases, github, check)
                for (row, path), ref in zip(rows, repos, strict=True)
            ],
        )
    report = StatusReport([row for row, _ in rows])
    for row in report.repos:
        entry = (record or {}).get(row.name)
        if isinstance(entry, dict):
            keys = ("outcome", "reason", "to_release", "pull_request")
            row.update = {key: str(entry.get(key) or "") for key in keys}
    if tracking is not None:
        report.tracking = _models(report.repos, tracking)
    for row in report.repos:  # a URL's user and password are never shown
        row.location, row.source, row.error = map(redact, (row.location, row.source, row.error))
    return report


def _models(rows: list[RepoStatus], tracking: TrackingServer) -> Tracking:
    """Fill each readable row's model facts, read for the whole fleet at once.

    A server that refuses or fails is a PavedError: the models column is all or nothing.
    """
    started = time.perf_counter()
    readable = [row for row in rows if not row.error and row.names[1]]
    if readable:
        found = tracking.read({row.names[1]: row.names[0] for row in readable})
        for row in readable:
            row.model = found[row.names[1]]
    seconds = round(time.perf_counter() - started, 2)
    return Tracking(redact(tracking.uri), tracking.calls, len(readable), seconds)


def _read(
    ref: RepoRef, scratch: Path, github: GitHub | None, check: bool
) -> tuple[RepoStatus, Path | None]:
    """The row with the answers read, and where the repo's files are (None: not cloned)."""
    row = RepoStatus(name=ref.name, location=str(ref.path or ref.url))
    try:
        if ref.problem:
            raise PavedError(ref.problem)
        path = ref.path
        if ref.github and github and not check:
            text = github.file(ref.github, ANSWERS_FILE, ref.branch or "HEAD")
            if text is None:
                raise PavedError(f"{ANSWERS_FILE} is missing: not generated from a template")
            answers = parse_answers(text, f"{ref.github}:{ANSWERS_FILE}")
        else:
            if path is None:
                # Never a folder named after the repo (`..` would be the scratch's parent).
                path = Path(tempfile.mkdtemp(prefix="repo-", dir=scratch)) / "repo"
                clone_shallow(ref, path)
            answers = read_answers(path)
        row.source = str(answers.get("_src_path", ""))
        row.current = str(answers.get("_commit", ""))
        row.names = _names(path, answers)
        row.team = str(answers.get("team", ""))
        if not row.source or not row.current:
            raise PavedError(f"{ANSWERS_FILE} names no _src_path or _commit")
        return row, path
    except Exception as exc:  # a repo, whatever it holds, fails its own row only
        row.error = one_line(exc, whole=False)
        return row, None


def _names(path: Path | None, answers: dict[str, object]) -> tuple[str, str]:
    """The repo's experiment and model: `[tool.paved]`, else what the answers made them."""
    made = str(answers.get("distribution_name", ""))
    if path is not None:
        try:
            settings = tool_paved(TeamRepo(path).pyproject, path)
        except PavedError:
            return made, made
        return str(settings.get("project", made)), str(settings.get("model-name", made))
    return made, made


def _finish(
    row: RepoStatus,
    ref: RepoRef,
    path: Path | None,
    releases: dict[str, list[str] | str],
    github: GitHub | None,
    check: bool,
) -> None:
    if row.error:
        return
    try:
        known = releases[row.source]
        if isinstance(known, str):
            raise PavedError(known)
        row.latest = latest(known, row.source)
        base = base_version(row.current)
        row.behind = sum(1 for tag in known if release_version(tag) > base)
        if row.behind:
            row.pending = _pending(ref, update_branch(row.latest), github)
        if check and path is not None:
            row.score = round(check_repo(path).score, 1)
        if ref.github and github:
            row.alerts = _alerts(github, ref.github)
    except Exception as exc:  # a repo, whatever it holds, fails its own row only
        row.error = one_line(exc, whole=False)


def _alerts(github: GitHub, slug: str) -> int | None:
    """Open monitoring alerts of `slug`; None when its issues cannot be listed (disabled)."""
    try:
        found = github.get(
            f"/repos/{slug}/issues", state="open", labels=ALERT_LABEL, per_page="100"
        )
    except PavedError:
        return None
    return len(found) if isinstance(found, list) else None


def _releases(source: str) -> Callable[[], list[str] | str]:
    def fetch() -> list[str] | str:
        try:
            return list(release_commits(source))
        except Exception as exc:  # one unreachable template source fails its repos only
            return f"cannot list the releases of {source}: {one_line(exc, whole=False)}"

    return fetch


def _pending(ref: RepoRef, branch: str, github: GitHub | None) -> str:
    if ref.github and github:
        pull = github.open_pull(ref.github, branch)
        if pull:
            return f"pull request #{pull.get('number')}"
    try:
        made = branch_tip(ref, branch)
    except PavedError:  # an origin out of reach: what the local copy knows
        made = local_tip(ref.path, branch) if ref.path is not None else ""
    return f"branch {branch}" if made else ""


def _parallel(jobs: int, tasks: list[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda task: task(), tasks))


def show_status(report: StatusReport, console: Console) -> None:
    """The fleet's status as a table: one row per repo, an unreadable one in red."""
    table = Table(title=f"{len(report.repos)} team repos", title_justify="left")
    columns = ["repo", "template", "release", "latest", "behind", "pending", "score"]
    if report.tracking is not None:
        columns += ["model", "champion", "deployed", "monitoring"]
    for column in columns:
        table.add_column(column, justify="right" if column in {"behind", "score"} else "left")
    for repo in report.repos:
        if repo.error:
            table.add_row(
                escape(repo.name), f"[red]{escape(repo.error)}[/]", *[""] * (len(columns) - 2)
            )
            continue
        behind = f"[yellow]{repo.behind}[/]" if repo.behind else "0"
        score = "" if repo.score is None else f"{repo.score:.0f} %"
        cells = [
            escape(repo.name),
            escape(repo.source),
            repo.current,
            repo.latest,
            behind,
            escape(repo.pending),
            score,
        ]
        if report.tracking is not None:
            cells += _model_cells(repo.model)
        table.add_row(*cells)
    console.print(table)
    if report.tracking is not None:
        tracking = report.tracking
        console.print(
            f"models: {tracking.models} read from {escape(tracking.uri)} in "
            f"{tracking.seconds:.2f} s, {tracking.calls} calls ({tracking.per_repo:.2f} per repo)"
        )


_SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """`values` as block characters, lowest to highest (one value: a middle bar)."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    return "".join(
        _SPARKS[3 if not span else round((value - low) / span * (len(_SPARKS) - 1))]
        for value in values
    )


def _model_cells(model: ModelFacts | None) -> list[str]:
    if model is None:
        return ["", "", "", ""]
    if model.error:
        return [escape(model.name), f"[red]{escape(model.error)}[/]", "", ""]
    if not model.versions:
        return [escape(model.name), "[yellow]not registered[/]", "", ""]
    champion = "[yellow]none[/]"
    if model.champion:
        figure = "" if model.value is None else f" {model.metric}={model.value:.4g}"
        age = "" if model.champion_age_days is None else f", {model.champion_age_days:g} d old"
        champion = f"v{model.champion}{figure}{age} {sparkline(model.history)}"
    deployed = ", ".join(
        f"{environment} v{version}"
        for environment, version in (("staging", model.staging), ("production", model.production))
        if version
    )
    monitoring = ", ".join(
        f"{kind} [red]failed[/]" if result["state"] == "failed" else f"{kind} passed"
        for kind, result in model.monitoring.items()
    )
    return [escape(model.name), champion, deployed, monitoring]
