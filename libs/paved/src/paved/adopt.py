"""`paved adopt`: bring a repo that cookiecutter, cruft or nothing made onto the paved road.

On a new branch (never the default one): map what the repo already says into answers
(pyproject / setup.cfg / setup.py, `.cruft.json`'s cookiecutter context, `.python-version`,
`.dvc/config`, the package folder), render the template at a release with them (copier asks
for the rest, or takes `data`), and merge that render into the repo as a three-way merge
whose base is empty: a file only the template has is added, a file only the repo has is
kept, a file both have is merged, and where they differ the conflict is marked in the file
and listed. Nothing the repo had is overwritten. The render's answers file records the
release, so `paved update` takes the repo on from there.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from rich.console import Console
from rich.markup import escape

from paved._errors import ExitCode, PavedError
from paved._git import git, git_env
from paved._proc import QUICK_TIMEOUT, run
from paved.releases import pick_release
from paved.repo import ANSWERS_FILE, TeamRepo, read_answers, require_clean, unmerged_paths
from paved.template import PLATFORM_URL, Checkpoint, identity, lock_environment, render
from paved.update import Conflict, count_markers

__all__ = ["AdoptReport", "adopt_project", "map_answers", "show_adopt"]

#: The template's Python choices, newest last (copier.yml `python_version`).
PYTHON_CHOICES = ("3.11", "3.12")
#: Where data lives, by URL scheme, as the template's `dvc_remote` names it.
REMOTE_KINDS = {"s3": "s3", "gs": "gs", "gcs": "gs", "azure": "azure", "az": "azure"}
_NOT_PACKAGES = {"tests", "test", "docs", "scripts", "notebooks", "data", "models", "build"}

Status = Literal["adopted", "conflicts"]


@dataclass
class AdoptReport:
    """What adoption did (JSON-ready through `as_json`)."""

    project: str
    branch: str
    release: str
    status: Status
    answers: dict[str, Any]
    #: Where each mapped answer came from: {question: "pyproject.toml [project] name"}.
    mapped: dict[str, str] = field(default_factory=dict)
    #: Questions nothing in the repo answered (given by data, asked, or the default).
    unmapped: list[str] = field(default_factory=list)
    #: What the team should still do by hand (e.g. requirements.txt into pyproject).
    notes: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        """0 adopted, 3 adopted with conflicts to resolve (as `paved update`)."""
        return ExitCode.OK if self.status == "adopted" else ExitCode.CONFLICTS

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {**asdict(self), "exit_code": self.exit_code}


def adopt_project(
    project: Path,
    *,
    src: str = PLATFORM_URL,
    to: str | None = None,
    data: Mapping[str, Any] | None = None,
    branch: str = "paved/adopt",
    defaults: bool = False,
    lock: bool = True,
) -> AdoptReport:
    """Adopt `project` on `branch` at release `to` (default: the latest); see the module doc.

    Refusals (not a git repo, uncommitted changes, already managed, the branch exists, an
    unknown release, an answer the template refuses) raise a PavedError and change nothing;
    a failure after the branch is made puts the repo back on its branch and deletes it.
    """
    project = project.absolute()
    require_clean(project)
    if (project / ANSWERS_FILE).exists():
        raise PavedError(
            f"{project} already has {ANSWERS_FILE}: it is managed; use `paved update` instead"
        )
    if git(project, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False):
        raise PavedError(f"branch {branch} already exists in {project}: delete it or pass --branch")
    if not git(project, "rev-parse", "--verify", "--quiet", "HEAD", check=False):
        raise PavedError(f"{project} has no commit yet: commit its files first")
    release, _ = pick_release(src, to)

    answers, mapped, notes = map_answers(project)
    answers.update(data or {})
    report = AdoptReport(str(project), branch, release, "adopted", answers, mapped, notes=notes)
    with tempfile.TemporaryDirectory(prefix="paved-adopt-") as scratch:
        rendered = Path(scratch) / project.name
        render(src, rendered, answers, vcs_ref=release, defaults=defaults)
        report.answers = read_answers(rendered)
        report.unmapped = sorted(
            key for key in report.answers if not key.startswith("_") and key not in mapped
        )
        commit = _commit_render(project, rendered, Path(scratch) / "index", release)
    _merge(project, report, commit, lock=lock)
    return report


def map_answers(project: Path) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """What the repo says about itself, as template answers: (answers, sources, notes)."""
    answers: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def take(question: str, value: object, source: str) -> None:
        if value not in (None, "") and question not in answers:
            answers[question] = str(value).strip()
            sources[question] = source

    context = _cookiecutter_context(project)
    for question, keys in {
        "project_name": ("project_name",),
        "distribution_name": ("repo_name", "project_slug", "distribution_name"),
        "package_name": ("module_name", "package_name", "project_slug"),
        "description": ("description", "project_short_description"),
    }.items():
        for key in keys:
            if isinstance(context.get(key), str):
                take(question, context[key], f".cruft.json cookiecutter.{key}")
                break
    repo = TeamRepo(project)
    metadata, where = _metadata(project, repo)
    if metadata.get("name"):
        take("distribution_name", metadata["name"], f"{where} name")
    take("description", metadata.get("description"), f"{where} description")
    if "distribution_name" in answers:
        answers["distribution_name"] = re.sub(r"[-_.]+", "-", answers["distribution_name"]).lower()
    if "package_name" in answers:
        answers["package_name"] = re.sub(r"[^a-z0-9_]", "_", answers["package_name"].lower())
    package = _package(project)
    if package:
        take("package_name", package.name, f"{package.relative_to(project)}/__init__.py")
    title = _readme_title(project)
    take("project_name", title, "README title")
    if "project_name" not in answers and "distribution_name" in answers:
        take("project_name", answers["distribution_name"].replace("-", " ").title(), "the name")
    python, source = _python(repo, metadata, context)
    take("python_version", python, source)
    kind, url, source = _remote(project, context)
    take("dvc_remote", kind, source)
    take("dvc_remote_url", url, source)
    notes = _to_do(project, package, context, metadata, python_mapped=python is not None)
    return answers, sources, notes


def _to_do(
    project: Path,
    package: Path | None,
    context: Mapping[str, Any],
    metadata: Mapping[str, Any],
    *,
    python_mapped: bool,
) -> list[str]:
    """What adoption leaves to the team, said in the report."""
    notes = []
    if package is not None and package.parent == project:
        notes.append(
            f"the package is at {package.name}/; the template's modules go to "
            f"src/{package.name}/: move yours there (`git mv {package.name} src/`)"
        )
    if not python_mapped and metadata.get("requires-python"):
        notes.append(
            f"requires-python {metadata['requires-python']} fits none of the template's Pythons "
            f"({', '.join(PYTHON_CHOICES)}): check the code runs on the one chosen"
        )
    if (project / "requirements.txt").is_file():
        notes.append(
            "requirements.txt is kept: move its requirements into pyproject.toml "
            "(`uv add -r requirements.txt`), then delete it"
        )
    if context:
        notes.append(
            ".cruft.json is kept: the repo now updates with `paved update`; delete .cruft.json "
            "so that `cruft update` does not apply its old template over this one"
        )
    if (project / "setup.py").is_file() or (project / "setup.cfg").is_file():
        notes.append("setup.py/setup.cfg are kept: pyproject.toml now builds the package")
    return notes


# ------------------------------------------------------------------ reading the repo


def _cookiecutter_context(project: Path) -> dict[str, Any]:
    path = project / ".cruft.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PavedError(f"{path} is not valid JSON: {exc}") from exc
    context = data.get("context", {}).get("cookiecutter", {}) if isinstance(data, dict) else {}
    return context if isinstance(context, dict) else {}


def _metadata(project: Path, repo: TeamRepo) -> tuple[dict[str, Any], str]:
    table = repo.pyproject.get("project", {})
    if isinstance(table, dict) and table.get("name"):
        return table, "pyproject.toml [project]"
    path = project / "setup.cfg"
    if path.is_file():
        config = configparser.ConfigParser()
        config.read_string(path.read_text(encoding="utf-8"))
        if config.has_option("metadata", "name"):
            return dict(config["metadata"]), "setup.cfg [metadata]"
    path = project / "setup.py"
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        found = {
            key: match[1]
            for key in ("name", "description", "python_requires")
            if (match := re.search(rf"\b{key}\s*=\s*[\"']([^\"']+)[\"']", text))
        }
        if "python_requires" in found:
            found["requires-python"] = found.pop("python_requires")
        return found, "setup.py"
    return {}, ""


def _package(project: Path) -> Path | None:
    for parent in (project / "src", project):
        if not parent.is_dir():
            continue
        found = sorted(
            child
            for child in parent.iterdir()
            if (child / "__init__.py").is_file()
            and child.name not in _NOT_PACKAGES
            and child.name.isidentifier()
        )
        if len(found) == 1:
            return found[0]
    return None


def _readme_title(project: Path) -> str | None:
    for name in ("README.md", "README.rst", "README"):
        path = project / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("# "):
                    return line[2:].strip() or None
    return None


def _python(
    repo: TeamRepo, metadata: Mapping[str, Any], context: Mapping[str, Any]
) -> tuple[str | None, str]:
    pinned = repo.python_pin
    if pinned is not None:
        version = ".".join(pinned.split(".")[:2])
        if version in PYTHON_CHOICES:
            return version, ".python-version"
    for key in ("python_version", "python_version_number"):
        if str(context.get(key, "")) in PYTHON_CHOICES:
            return str(context[key]), f".cruft.json cookiecutter.{key}"
    try:
        allowed = SpecifierSet(str(metadata.get("requires-python", "")))
    except InvalidSpecifier:
        return None, ""
    if str(allowed):
        fits = [v for v in PYTHON_CHOICES if Version(f"{v}.0") in allowed or Version(v) in allowed]
        if fits:
            return fits[0], f"requires-python {allowed}"
    return None, ""


def _remote(project: Path, context: Mapping[str, Any]) -> tuple[str | None, str | None, str]:
    config = project / ".dvc" / "config"
    if config.is_file():
        text = config.read_text(encoding="utf-8")
        match = re.search(r"^\s*url\s*=\s*(\S+)", text, re.MULTILINE)
        if match:
            url = match[1]
            scheme = url.split("://", 1)[0] if "://" in url else ""
            return REMOTE_KINDS.get(scheme, "local" if not scheme else None), url, ".dvc/config"
    storage = context.get("dataset_storage")
    if isinstance(storage, dict):
        for kind in storage:
            if kind in REMOTE_KINDS:
                return REMOTE_KINDS[kind], None, ".cruft.json cookiecutter.dataset_storage"
    makefile = project / "Makefile"
    if makefile.is_file():
        match = re.search(r"\b(s3|gs)://([\w.-]+)", makefile.read_text(encoding="utf-8"))
        if match:
            return REMOTE_KINDS[match[1]], None, f"Makefile ({match[0]})"
    return None, None, ""


# ------------------------------------------------------------------ merging


def _commit_render(project: Path, rendered: Path, index: Path, release: str) -> str:
    """The render as a root commit in `project`'s object store (its index untouched)."""
    env = {
        "GIT_INDEX_FILE": str(index),
        "GIT_WORK_TREE": str(rendered),
        "GIT_DIR": _git_dir(project),
    }
    git(rendered, "add", "--all", "--force", ".", env=env)
    tree = git(project, "write-tree", env={"GIT_INDEX_FILE": str(index)})
    message = f"The Paved template {release}, rendered with this repo's answers"
    return git(project, *identity(project), "commit-tree", tree, "-m", message)


def _git_dir(project: Path) -> str:
    return str((project / git(project, "rev-parse", "--git-dir")).resolve())


def _refuse_ignored_collisions(project: Path, commit: str) -> None:
    """Refuse when the render has a path the repo holds as an ignored file.

    Git takes ignored files as expendable: its merge would replace a team's ignored
    `.python-version` with the template's (`--no-overwrite-ignore` does not stop a merge
    of unrelated histories), and the clean-up of a failed adoption would then delete it.
    """
    tracked = set(git(project, "ls-files", "-z").split("\0"))
    listed = git(project, "ls-tree", "-r", "-z", "--name-only", commit).split("\0")
    rendered = [path for path in listed if path]
    # A rendered file, or a folder on its way that the repo holds as an untracked file.
    paths = set(rendered)
    folders = {str(Path(path).parent) for path in rendered} - {"."}
    folders |= {str(parent) for folder in folders for parent in Path(folder).parents} - {"."}
    ignored = sorted(
        path
        for path in paths | folders
        if path not in tracked
        and os.path.lexists(project / path)
        and (path in paths or not (project / path).is_dir() or (project / path).is_symlink())
    )
    if ignored:
        shown = ", ".join(ignored[:8]) + (", ..." if len(ignored) > 8 else "")
        raise PavedError(
            f"the template has files this repo ignores ({shown}): the merge would overwrite "
            "them. Move them aside (or commit them), then run paved adopt again"
        )


def _merge(project: Path, report: AdoptReport, commit: str, *, lock: bool) -> None:
    _refuse_ignored_collisions(project, commit)
    # Where a failure puts the repo back: its branch, or the very commit a detached HEAD was at.
    checkpoint = Checkpoint.take(project)
    git(project, "switch", "--quiet", "-c", report.branch)
    try:
        merge = run(
            [
                "git",
                *identity(project),
                "merge",
                "--no-ff",
                "--no-commit",
                "--allow-unrelated-histories",
                "-X",
                "no-renames",
                commit,
            ],
            cwd=project,
            env=git_env(),
            timeout=QUICK_TIMEOUT,
            check=False,
        )
        unmerged = unmerged_paths(project)
        if not git(project, "rev-parse", "--verify", "--quiet", "MERGE_HEAD", check=False):
            said = " ".join(merge.stderr.split())
            raise PavedError(f"git merge of the template did not start: {said}")
        report.added = sorted(
            set(git(project, "diff", "--cached", "--name-only", "--diff-filter=A").splitlines())
            - set(unmerged)
        )
        report.conflicts = [
            Conflict(path, "unmerged", count_markers(project / path)) for path in unmerged
        ]
        if report.conflicts:
            report.status = "conflicts"
            return
        if lock:
            lock_environment(project)
            git(project, "add", "uv.lock")
        git(
            project,
            *identity(project),
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            f"Adopt the Paved template {report.release}",
        )
    except BaseException:
        checkpoint.restore()
        raise


def show_adopt(report: AdoptReport, console: Console) -> None:
    """The adoption as `paved adopt` prints it (with rich markup), and what to do next."""
    mark = "[green]adopted[/]" if report.status == "adopted" else "[yellow]conflicts[/]"
    console.print(
        f"{mark} {Path(report.project).name} at {report.release} on branch {report.branch}"
    )
    for question, source in report.mapped.items():
        console.print(
            f"  mapped {question} = {report.answers.get(question)!r} from {escape(source)}"
        )
    if report.unmapped:
        console.print(f"  not in the repo (given, asked or default): {', '.join(report.unmapped)}")
    console.print(f"  {len(report.added)} files added by the template")
    for conflict in report.conflicts:
        console.print(
            f"  [yellow]both had it[/] {escape(conflict.path)} ({conflict.markers} markers)"
        )
    for note in report.notes:
        console.print(f"  [yellow]to do[/] {escape(note)}")
    if report.conflicts:
        console.print(
            "next: resolve the files above (yours is the HEAD side), `uv lock`, "
            "`git add --all && git commit`, then `paved check`; `git merge --abort` undoes it"
        )
    else:
        console.print("next: `paved check`, review `git log -p`, push the branch and open a PR")
