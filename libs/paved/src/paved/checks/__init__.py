"""`paved check`: the Paved standard as repo-review plugins, and a score over them.

The rules (PV001...) are repo-review checks registered through its entry points, so they
run from `paved check`, from `repo-review` itself (with Scientific Python's sp-repo-review
checks beside them), from a pre-commit hook and in CI. `check_repo` runs every installed
plugin on a folder, honouring `[tool.repo-review]` in its pyproject (select, and ignore
with reasons), and scores it: passed / (passed + failed).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from paved._errors import PavedError
from paved.checks.rules import FAMILY, RULES

if TYPE_CHECKING:
    from repo_review.families import Family
    from repo_review.processor import Result

__all__ = ["CheckReport", "check_repo", "repo_review_checks", "repo_review_families", "show_check"]


def repo_review_checks() -> dict[str, Any]:
    """Entry point `repo_review.checks`: one instance per rule, by ID."""
    return {rule.__name__: rule() for rule in RULES}


def repo_review_families() -> dict[str, Family]:
    """Entry point `repo_review.families`: the Paved family, shown first."""
    return {
        FAMILY: {
            "name": "Paved standard",
            "order": -100,
            "description": "What every team repo on the paved road keeps (`paved check`).",
        }
    }


@functools.cache
def _plugins() -> tuple[dict[str, Any], tuple[Any, ...], tuple[Any, ...]]:
    """The installed plugins' fixture, check and family functions, loaded once per process.

    repo-review looks its entry points up on every run (three scans of every installed
    distribution, half the time of a check of one repo); a fleet checks hundreds.
    """
    from importlib.metadata import entry_points

    from repo_review.fixtures import collect_fixtures

    checks = tuple(ep.load() for ep in entry_points(group="repo_review.checks"))
    families = tuple(ep.load() for ep in entry_points(group="repo_review.families"))
    return collect_fixtures(), checks, families


def _collect(root: Path) -> Any:
    """What repo-review's `collect_all` returns for `root`, from the plugins loaded once."""
    from repo_review.families import Family
    from repo_review.fixtures import apply_fixtures, compute_fixtures
    from repo_review.processor import CollectionReturn

    fixture_functions, check_functions, family_functions = _plugins()
    fixtures = compute_fixtures(root, root, fixture_functions)
    checks = {k: v for f in check_functions for k, v in apply_fixtures(fixtures, f).items()}
    families = {k: v for f in family_functions for k, v in apply_fixtures(fixtures, f).items()}
    for name in {check.family for check in checks.values()}:
        families.setdefault(name, Family())
    ordered = dict(
        sorted(
            checks.items(),
            key=lambda item: (families[item[1].family].get("order", 0), item[1].family, item[0]),
        )
    )
    return CollectionReturn(fixtures, ordered, families)


@dataclass(frozen=True)
class CheckReport:
    """The outcome of every check on one repo."""

    path: Path
    families: dict[str, Family]
    results: list[Result]

    @property
    def passed(self) -> list[str]:
        """IDs of the checks that passed."""
        return [r.name for r in self.results if r.result is True]

    @property
    def failed(self) -> list[str]:
        """IDs of the checks that failed."""
        return [r.name for r in self.results if r.result is False]

    @property
    def skipped(self) -> list[str]:
        """IDs of the checks skipped (ignored with a reason, or a check they need failed)."""
        return [r.name for r in self.results if r.result is None]

    @property
    def score(self) -> float:
        """Percent of the checks that ran which passed (100.0 when none ran)."""
        ran = len(self.passed) + len(self.failed)
        return 100.0 * len(self.passed) / ran if ran else 100.0

    def as_dict(self) -> dict[str, Any]:
        """repo-review's JSON shape (`status`, `families`, `checks`) plus the score."""
        from repo_review.processor import as_simple_dict

        return {
            "path": str(self.path),
            "status": "passed" if not self.failed else "failed",
            "score": round(self.score, 1),
            "families": self.families,
            "checks": as_simple_dict(self.results),
        }

    def as_html(self) -> str:
        """repo-review's HTML report."""
        from repo_review.html import to_html

        return to_html(self.families, self.results)


def check_repo(
    path: Path, *, select: frozenset[str] = frozenset(), ignore: frozenset[str] = frozenset()
) -> CheckReport:
    """Run every installed repo-review check on the repo at `path`; `select`/`ignore` by ID."""
    from repo_review.processor import process

    path = path.absolute()
    if not path.is_dir():
        raise PavedError(f"{path} is not a folder")
    try:
        families, results = process(
            path, extend_select=select, extend_ignore=ignore, collected=_collect(path)
        )
    except Exception as exc:  # a plugin or fixture that breaks on this repo
        raise PavedError(f"the checks could not run on {path}: {exc}") from exc
    return CheckReport(path=path, families=dict(families), results=list(results))


def show_check(report: CheckReport, console: Console, *, quiet: bool) -> None:
    """Each check's result (a failure with its hint; passes, skips unless `quiet`), the score."""
    for result in report.results:
        if result.result is True and not quiet:
            console.print(f"[green]pass[/] {result.name} {escape(result.description)}")
        elif result.result is None and not quiet:
            why = f": {result.skip_reason}" if result.skip_reason else ""
            console.print(f"[dim]skip[/] {result.name} {escape(result.description)}{escape(why)}")
        elif result.result is False:
            console.print(f"[bold red]FAIL[/] {result.name} {escape(result.description)}")
            hint = result.err_msg.strip()
            for line in hint.splitlines():
                console.print(f"     {escape(line)}", highlight=False, soft_wrap=True)
    mark = "[green]" if not report.failed else "[bold red]"
    console.print(
        f"{mark}score {report.score:.0f} %[/] {report.path.name}: {len(report.passed)} passed, "
        f"{len(report.failed)} failed, {len(report.skipped)} skipped"
    )
