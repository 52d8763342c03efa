"""`paved update`: bring a team repo to a platform release and leave its CI green.

copier's update merges the new release into the repo (three renders and a three-way merge
of the team's changes); this adds what copier leaves to the team: it refuses a dirty tree
and a downgrade, re-locks upgrading only the platform packages (copier moves the pins in
pyproject.toml, never uv.lock), classifies the outcome from the repo itself (unmerged
entries, conflict markers, rejected hunks; copier exits 0 with conflicts left behind), flags
files the template removed although the team had edited them, and on any failure puts the
repo back as it was (same HEAD, index and work tree). The changes stay uncommitted, for the
team to review; the fleet rollout commits them on a branch.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from rich.console import Console
from rich.markup import escape

from paved._errors import ExitCode, PavedError
from paved._git import git, git_env
from paved._proc import run
from paved.releases import base_version, compare, migrations, pick_release, release_notes
from paved.repo import (
    ANSWERS_FILE,
    PLATFORM_PACKAGES,
    read_answers,
    require_clean,
    uncommitted,
    unmerged_paths,
)
from paved.template import (
    PLATFORM_URL,
    Checkpoint,
    TemplateClone,
    TemplateClones,
    copier_update,
    reject_files,
    render,
    require_uv,
)

__all__ = [
    "EXIT_CODES",
    "PLATFORM_PACKAGES",
    "Conflict",
    "UpdateReport",
    "count_markers",
    "show_update",
    "update_project",
]

Status = Literal["updated", "current", "conflicts", "failed"]
#: What `paved update` exits with, by outcome.
EXIT_CODES: dict[str, ExitCode] = {
    "updated": ExitCode.OK,
    "current": ExitCode.OK,
    "failed": ExitCode.FAILED,
    "conflicts": ExitCode.CONFLICTS,
}
#: `uv lock` moving the packages a platform release moves (PLATFORM_PACKAGES), and no other.
_UPGRADE = tuple(arg for name in PLATFORM_PACKAGES for arg in ("--upgrade-package", name))
_MARKER = re.compile(r"^<<<<<<< ", re.MULTILINE)


@dataclass(frozen=True)
class Conflict:
    """A file the team must look at: conflict markers, an unmerged entry or rejected hunks."""

    path: str
    kind: Literal["markers", "unmerged", "rejected"]
    markers: int = 0


@dataclass
class UpdateReport:
    """What an update did to one repo (JSON-ready through `as_json`)."""

    project: str
    source: str
    from_release: str
    to_release: str
    status: Status
    reason: str = ""
    changed: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    #: Files the template removed that the team had edited (their version stays in HEAD).
    removed_edited: list[str] = field(default_factory=list)
    #: Stored answers the new release's validators refused, which copier replaced:
    #: {question: [stored, now]}.
    replaced_answers: dict[str, list[Any]] = field(default_factory=dict)
    #: The changelog entries of the releases the update brings in, newest first.
    changelog: str = ""
    #: The releases whose migrations ran (code from the template: trusted sources only).
    migrations: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)
    #: Whether the lock made ahead of the merge was taken (the merge left the lock's
    #: inputs as predicted), rather than a re-lock after it.
    locked_ahead: bool = False
    #: Where the time went, by step (seconds).
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        """The CLI's exit code for this outcome (EXIT_CODES)."""
        return EXIT_CODES[self.status]

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {**asdict(self), "exit_code": self.exit_code}


def update_project(
    project: Path,
    *,
    to: str | None = None,
    platform_url: str = PLATFORM_URL,
    lock: bool = True,
    clones: TemplateClones | None = None,
) -> UpdateReport:
    """Update `project` to release `to` (default: the latest); see the module's docstring.

    Refusals (a dirty tree, a downgrade, an unknown release, no answers file) raise a
    PavedError before anything is touched; a failure during the update is reported with
    status "failed" after the repo is put back. The template is read from its clone in
    `clones` (made there if missing; by default a clone for this update only).
    """
    project = project.absolute()
    answers = read_answers(project)
    source, current = str(answers.get("_src_path", "")), str(answers.get("_commit", ""))
    if not source or not current:
        raise PavedError(f"{project / ANSWERS_FILE} names no _src_path or _commit")
    require_clean(project)
    target, commits = pick_release(source, to)
    report = UpdateReport(str(project), source, current, target, "current")
    step = compare(current, target)
    if step == "older":
        raise PavedError(
            f"{project.name} is at {current}; {target} is older: paved update never downgrades"
        )
    if step == "current":
        return report
    with tempfile.TemporaryDirectory(prefix="paved-update-") as scratch:
        return _update(
            project,
            report,
            answers,
            trusted=source == platform_url,
            platform_url=platform_url,
            target_commit=commits[target] if lock else None,
            scratch=Path(scratch),
            clones=clones or TemplateClones(Path(scratch)),
        )


def _update(
    project: Path,
    report: UpdateReport,
    answers: Mapping[str, Any],
    *,
    trusted: bool,
    platform_url: str,
    target_commit: str | None,
    scratch: Path,
    clones: TemplateClones,
) -> UpdateReport:
    """The update proper, once the refusals are behind (see update_project).

    With `target_commit` (locking asked for), the re-lock starts before copier's merge, on
    a copy of pyproject.toml with the platform pins moved to that commit: the two longest
    steps overlap. Its lock is taken only if the merged pyproject.toml declares the same
    lock inputs; otherwise the repo is re-locked after the merge as usual.
    """
    source, current, target = report.source, report.from_release, report.to_release
    clock = _Clock(report.seconds)
    with clock("template clone and release notes"):
        clone = clones.get(source)
        report.changelog, report.migrations = _release_notes(clone, current, target)
    if report.migrations and not trusted:
        raise PavedError(
            f"{target} runs migrations ({', '.join(report.migrations)}), which run code from "
            f"the template, and {source} is not the platform's own URL ({platform_url}): "
            "paved update trusts no other source"
        )
    checkpoint = Checkpoint.take(project)

    def lock_ahead(commit: str) -> tuple[str, Path] | None:
        with clock("lock ahead (during the merge)"):
            return _lock_ahead(project, commit, scratch / "lock")

    failure: Exception | None = None
    # Leaving the pool waits for both locks: none writes while the repo is put back.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        early = pool.submit(lock_ahead, target_commit) if target_commit else None
        try:
            with clock("copier update"):
                copier_update(project, target, trusted=trusted, clone=clone)
            # The re-lock (uv, mostly waiting on I/O) runs while the outcome is classified;
            # a lock file left with conflict markers is not re-locked (uv would refuse it).
            unmerged = unmerged_paths(project)
            lock_conflicted = bool(count_markers(project / "uv.lock")) or "uv.lock" in unmerged
            with clock("classify and re-lock"):
                relock = target_commit and not lock_conflicted
                locking = pool.submit(_relock, project, early) if relock else None
                report.replaced_answers = _replaced_answers(answers, read_answers(project))
                report.removed_edited = _removed_edited(project, answers, clone, scratch)
                report.locked, report.locked_ahead = locking.result() if locking else ([], False)
                report.changed = uncommitted(project)
                report.conflicts = _conflicts(project, checkpoint, unmerged, report.changed)
        except (PavedError, OSError, ValueError, RuntimeError) as exc:
            failure = exc
    if failure is not None:
        checkpoint.restore()
        report.status, report.reason = "failed", _reason(failure)
        return report
    report.status = "conflicts" if report.conflicts or report.replaced_answers else "updated"
    return report


class _Clock:
    """Adds the seconds each `with clock(name):` block takes to `into[name]`."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.into[name] = round(time.perf_counter() - started, 3)


def _conflicts(
    project: Path, checkpoint: Checkpoint, unmerged: list[str], changed: list[str]
) -> list[Conflict]:
    found = [Conflict(path, "unmerged", count_markers(project / path)) for path in unmerged]
    for path in changed:
        if path in unmerged or not (project / path).is_file():
            continue
        count = count_markers(project / path)
        if count:
            found.append(Conflict(path, "markers", count))
    found += [
        Conflict(path, "rejected")
        for path in reject_files(project)
        if path not in checkpoint.rejects
    ]
    return found


def count_markers(path: Path) -> int:
    """How many conflict markers (`<<<<<<< `) the file holds (0 if it is not text)."""
    try:
        return len(_MARKER.findall(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return 0


def _removed_edited(
    project: Path, answers: Mapping[str, Any], clone: TemplateClone, scratch: Path
) -> list[str]:
    """Files the update deleted whose committed content is not the old release's.

    The old release's file is read from the template clone where it is a plain file at the
    same path; a templated one (`.jinja`, or under a templated folder name) is rendered:
    the old release with the repo's answers, from the same clone.
    """
    deleted = git(project, "diff", "--name-only", "--diff-filter=D", "HEAD").splitlines()
    if not deleted:
        return []
    current, kind = str(answers["_commit"]), str(answers.get("project_kind", ""))
    old_files = {
        path: clone.show(current, f"templates/{kind}/{path}") if kind else None for path in deleted
    }
    rendered = [path for path, text in old_files.items() if text is None]
    if rendered:
        data = {key: value for key, value in answers.items() if not key.startswith("_")}
        dest = scratch / "old-render"
        render(clone.source, dest, data, vcs_ref=current, defaults=True, clone=clone)
        for path in rendered:
            file = dest / path
            old_files[path] = file.read_text(encoding="utf-8") if file.is_file() else None
    edited = []
    for path, old in old_files.items():
        committed = run(["git", "show", f"HEAD:{path}"], cwd=project, env=git_env()).stdout
        if committed != old:
            edited.append(path)
    return edited


def _lock_ahead(project: Path, target_commit: str, folder: Path) -> tuple[str, Path] | None:
    """Lock a copy of the project whose platform pins name `target_commit`.

    Returns the pyproject.toml text it locked and the new lock, or None when the pins are
    not one commit (nothing to predict) or the lock fails (the normal re-lock will say why).
    """
    text = (project / "pyproject.toml").read_text(encoding="utf-8")
    pins = set(re.findall(r"@([0-9a-f]{40})#subdirectory=libs/", text))
    uv = shutil.which("uv")
    if len(pins) != 1 or uv is None or not (project / "uv.lock").is_file():
        return None
    predicted = text.replace(pins.pop(), target_commit)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(predicted, encoding="utf-8")
    shutil.copy2(project / "uv.lock", folder / "uv.lock")
    for name in (".python-version", "README.md"):  # what the project's metadata may name
        if (project / name).is_file():
            shutil.copy2(project / name, folder / name)
    try:
        _lock_platform(folder, uv)
    except PavedError:
        return None
    return predicted, folder / "uv.lock"


def _relock(
    project: Path, early: concurrent.futures.Future[tuple[str, Path] | None] | None = None
) -> tuple[list[str], bool]:
    """Re-lock moving only the platform packages; return what moved, and if `early` served.

    `uv lock --upgrade-package` keeps every other locked version where a version still
    satisfies the project; that nothing else moved is checked here, package by package.
    The lock made ahead of the merge (`early`) is taken when it locked the same inputs
    (dependencies, groups, uv and build settings) as the merged pyproject.toml.
    """
    if not (project / "uv.lock").is_file():
        raise PavedError(f"{project} has no uv.lock to update: run `uv lock` and commit it")
    uv = require_uv()
    before = _locked_versions(project / "uv.lock")
    ahead = early.result() if early else None
    merged = (project / "pyproject.toml").read_text(encoding="utf-8")
    taken = ahead is not None and _lock_inputs(ahead[0]) == _lock_inputs(merged)
    if ahead is not None and taken:
        shutil.copy2(ahead[1], project / "uv.lock")
    else:
        _lock_platform(project, uv)
    after = _locked_versions(project / "uv.lock")
    strays = sorted(
        name
        for name in before.keys() & after.keys()
        if before[name] != after[name] and name not in PLATFORM_PACKAGES
    )
    if strays:
        raise PavedError(
            f"re-locking moved packages other than the platform's: {', '.join(strays)}"
        )
    return [name for name in PLATFORM_PACKAGES if before.get(name) != after.get(name)], taken


def _lock_platform(folder: Path, uv: str) -> None:
    """`uv lock` in `folder` moving only the platform packages: from uv's cache if it can.

    The offline lock (no index requests: most of an online lock's time) is kept when every
    package from an index is locked exactly as before, which is what the online lock keeps
    too (uv keeps a locked version that still satisfies). Otherwise (a package the cache
    lacks, a git commit not fetched yet, a new or moved dependency) the original lock file
    is put back and locked again with the index. A failure of that lock raises.
    """
    lock = folder / "uv.lock"
    original = lock.read_bytes()
    offline = run([uv, "lock", "--quiet", "--offline", *_UPGRADE], cwd=folder, check=False)
    if offline.returncode == 0 and _from_index(original) == _from_index(lock.read_bytes()):
        return
    lock.write_bytes(original)
    run([uv, "lock", "--quiet", *_UPGRADE], cwd=folder, detail_lines=5)


def _from_index(lock: bytes) -> list[Any]:
    """The entries of a uv.lock whose package comes from an index (registry)."""
    import tomllib

    packages = tomllib.loads(lock.decode("utf-8")).get("package", [])
    return [entry for entry in packages if "registry" in entry.get("source", {})]


def _lock_inputs(pyproject: str) -> object:
    """What of a pyproject.toml a lock depends on (comments and prose do not count)."""
    import tomllib

    data = tomllib.loads(pyproject)
    project = data.get("project", {})
    keys = ("name", "version", "dependencies", "optional-dependencies", "requires-python")
    return (
        {key: project.get(key) for key in keys},
        data.get("dependency-groups"),
        data.get("tool", {}).get("uv"),
        data.get("build-system"),
    )


def _locked_versions(lock: Path) -> dict[str, str]:
    """Each locked package's version and source line, from uv.lock."""
    import tomllib

    data = tomllib.loads(lock.read_text(encoding="utf-8"))
    return {
        str(package["name"]): f"{package.get('version')} {package.get('source')}"
        for package in data.get("package", [])
    }


def _release_notes(clone: TemplateClone, current: str, target: str) -> tuple[str, list[str]]:
    """The changelog and the migrating releases after `current` up to `target`."""
    base = base_version(current)
    try:
        config = yaml.safe_load(clone.show(target, "copier.yml") or "{}")
    except yaml.YAMLError as exc:
        raise PavedError(
            f"the copier.yml of {clone.source} at {target} is not plain YAML, which paved reads "
            f"for its _migrations ({' '.join(str(exc).split())[:300]})"
        ) from exc
    notes = release_notes(clone.show(target, "docs/changelog.md") or "", base, target)
    return notes, migrations(config if isinstance(config, dict) else {}, base, target)


def _replaced_answers(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Answers kept under the same question whose value the update changed.

    copier replaces a stored answer that a tightened validator refuses with the default,
    and says nothing: that must not pass unseen.
    """
    return {
        key: [before[key], after[key]]
        for key in before.keys() & after.keys()
        if not key.startswith("_") and before[key] != after[key]
    }


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"


def show_update(report: UpdateReport, console: Console) -> None:
    """The report as `paved update` prints it (with rich markup), and what to do next."""
    name = Path(report.project).name
    move = f"{report.from_release} -> {report.to_release}"
    if report.status == "current":
        console.print(f"[green]current[/] {name} is at {report.to_release}")
        return
    if report.status == "failed":
        console.print(f"[bold red]failed[/] {name} {move}: {escape(report.reason)}")
        console.print("the repo is as it was before the update")
        return
    mark = "[green]updated[/]" if report.status == "updated" else "[yellow]conflicts[/]"
    locked = f"; re-locked {', '.join(report.locked)}" if report.locked else ""
    console.print(f"{mark} {name} {move}: {len(report.changed)} files changed{locked}")
    for conflict in report.conflicts:
        count = f" ({conflict.markers} conflict markers)" if conflict.markers else ""
        console.print(f"  [yellow]{conflict.kind}[/] {escape(conflict.path)}{count}")
    for question, (stored, now) in report.replaced_answers.items():
        console.print(
            f"  [yellow]answer replaced[/] {question}: {stored!r} -> {now!r} (the release's "
            "validator refused the stored answer; set it again in .copier-answers.yml)"
        )
    if report.migrations:
        console.print(f"  ran the migrations of {', '.join(report.migrations)} (trusted source)")
    for path in report.removed_edited:
        console.print(
            f"  [yellow]removed by the template, edited by you[/] {escape(path)} "
            f"(your version: git show HEAD:{escape(path)})"
        )
    if report.changelog:
        console.print(escape(report.changelog), highlight=False)
    steps = ["review `git diff`"]
    if report.conflicts:
        steps.append("resolve the files above (then `uv lock` if uv.lock was one)")
    steps.append("`git add --all && git commit`")
    console.print("next: " + ", then ".join(steps))
