"""`paved status`: where every team repo of a fleet stands against its template's releases.

One row per repo: template source, current release, latest release, releases behind, the
pending update branch or pull request, and the conformance score (`paved check`). The
releases come from one `git ls-remote --tags` per template source, never a clone per repo;
a remote repo is read from a shallow clone (or, for GitHub without the score, through the
API), a local one where it is.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paved._credentials import redact
from paved._errors import ExitCode, PavedError, one_line
from paved.checks import check_repo
from paved.fleet.github import GitHub
from paved.fleet.sources import RepoRef, branch_tip, clone_shallow, find_repos, local_tip
from paved.releases import base_version, latest, release_commits, release_version, update_branch
from paved.repo import ANSWERS_FILE, parse_answers, read_answers

__all__ = ["RepoStatus", "StatusReport", "fleet_status", "show_status"]


@dataclass
class RepoStatus:
    """One repo's row."""

    name: str
    location: str
    source: str = ""
    current: str = ""
    latest: str = ""
    behind: int | None = None
    #: "pull request #12", "branch paved/update-v0.2.0", or "".
    pending: str = ""
    score: float | None = None
    error: str = ""


@dataclass
class StatusReport:
    """Every repo's row, in the order found."""

    repos: list[RepoStatus]

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
        return {
            "repos": [asdict(repo) for repo in self.repos],
            "behind": len(self.behind),
            "failed": sum(1 for repo in self.repos if repo.error),
            "exit_code": self.exit_code,
        }


def fleet_status(target: str, *, check: bool = True, jobs: int = 4) -> StatusReport:
    """The status of every repo `target` names (see `paved.fleet.sources`)."""
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
    for row, _ in rows:  # a URL's user and password are never shown
        row.location, row.source, row.error = map(redact, (row.location, row.source, row.error))
    return StatusReport([row for row, _ in rows])


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
        if not row.source or not row.current:
            raise PavedError(f"{ANSWERS_FILE} names no _src_path or _commit")
        return row, path
    except Exception as exc:  # a repo, whatever it holds, fails its own row only
        row.error = one_line(exc, whole=False)
        return row, None


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
    except Exception as exc:  # a repo, whatever it holds, fails its own row only
        row.error = one_line(exc, whole=False)


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
    for column in ("repo", "template", "release", "latest", "behind", "pending", "score"):
        table.add_column(column, justify="right" if column in {"behind", "score"} else "left")
    for repo in report.repos:
        if repo.error:
            table.add_row(escape(repo.name), f"[red]{escape(repo.error)}[/]", *[""] * 5)
            continue
        behind = f"[yellow]{repo.behind}[/]" if repo.behind else "0"
        score = "" if repo.score is None else f"{repo.score:.0f} %"
        table.add_row(
            escape(repo.name),
            escape(repo.source),
            repo.current,
            repo.latest,
            behind,
            escape(repo.pending),
            score,
        )
    console.print(table)
