"""Driving copier: the one module that renders, updates, locks and rolls back a team repo.

`paved new` renders, then adds what copier leaves to the user and what `copier update`
needs later: a git repository with a first commit holding the rendered files (update
diffs against it) and the uv lock file. `paved update` and `paved adopt` render and
update through the functions here too, and put a repo back with a `Checkpoint` when a
change fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paved._errors import PavedError
from paved._git import git, git_env
from paved._proc import run

__all__ = [
    "PLATFORM_URL",
    "Checkpoint",
    "TemplateClone",
    "TemplateClones",
    "copier_update",
    "identity",
    "lock_environment",
    "new_project",
    "reject_files",
    "render",
    "require_uv",
]

#: The canonical URL of the platform repository. Generated repos record it as their
#: template source and pin paved-ml and the reusable workflows to it.
PLATFORM_URL = "https://github.com/acme/paved.git"
#: Folders of tools, never the template's: not searched for reject files.
_TOOL_FOLDERS = {".git", ".venv", ".dvc", "node_modules", "mlruns", ".bentoml"}


def new_project(
    dest: Path,
    *,
    src: str = PLATFORM_URL,
    data: Mapping[str, Any] | None = None,
    vcs_ref: str | None = None,
    defaults: bool = False,
    lock: bool = True,
) -> Path:
    """Render the template into `dest` (new or empty), init git, lock, commit; return `dest`.

    On any failure the folder is removed again if this call created it, so a refused
    answer or a failed lock leaves nothing behind.
    """
    _check_source(src)
    dest = dest.absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise PavedError(f"{dest} already exists and is not an empty folder")
    created = not dest.exists()
    try:
        render(src, dest, dict(data or {}), vcs_ref=vcs_ref, defaults=defaults)
        git(dest, "init", "--quiet", "--initial-branch=main")
        if lock:
            lock_environment(dest)
        git(dest, "add", "--all")
        git(dest, *identity(dest), "commit", "--quiet", "-m", "Generate from the Paved template")
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for child in dest.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return dest


def _check_source(src: str) -> None:
    if src.startswith("file://"):
        raise PavedError(
            f"source {src!r}: copier refuses plain file:// URLs; use git+file://{src[7:]}"
        )
    parts = src.rstrip("/").split("/")
    if "templates" in parts[-2:]:
        raise PavedError(
            f"source {src!r} is a folder inside the platform repo: a repo copied from a "
            "subfolder can never be updated. Copy the platform repo itself."
        )


def render(
    src: str,
    dest: Path,
    data: Mapping[str, Any],
    *,
    vcs_ref: str | None,
    defaults: bool,
    clone: TemplateClone | None = None,
) -> None:
    """Render release `vcs_ref` of `src` into `dest`; a refused answer is a PavedError.

    With `clone` (of `src`), copier reads the template from it rather than fetching it.
    """
    from copier import run_copy
    from copier.errors import CopierError

    try:
        with _copier_call(), clone.copier() if clone else contextlib.nullcontext():
            run_copy(
                src,
                dest,
                data=dict(data),
                vcs_ref=vcs_ref,
                defaults=defaults,
                quiet=True,
                unsafe=False,
            )
    except (CopierError, ValueError) as exc:
        raise PavedError(str(exc)) from exc


class TemplateClone:
    """One clone of a template source, made once per update and used by every step of it.

    A mirror clone (every release tag) at the place copier looks for its cached mirror of
    `source`, inside `folder`, with its remote removed: while `copier()` is entered, copier
    finds it there (COPIER_CACHE_DIR), and its refresh of the mirror (`git remote update`)
    fetches nothing. So the notes, the old release's files, the old render and copier's own
    three renders all read this one clone, and the source is fetched once.
    """

    def __init__(self, source: str, folder: Path) -> None:
        self.source, self.cache = source, folder
        url, self.path = _copier_mirror(source, folder)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # copier's refresh of the mirror will fetch nothing: no upkeep after it either.
        clone = ["git", "clone", "--quiet", "--mirror", "-c", "maintenance.auto=false"]
        clone += ["--", url, str(self.path)]
        run(clone, env=git_env(), timeout=300, detail_lines=5, failure=f"cannot clone {source}")
        git(self.path, "remote", "remove", "origin")

    def show(self, ref: str, path: str) -> str | None:
        """The text of `path` at `ref` of the template, or None if it has none there."""
        done = run(
            ["git", "--git-dir", str(self.path), "show", f"{ref}:{path}", "--"],
            env=git_env(),
            check=False,
        )
        return None if done.returncode else done.stdout

    def copier(self) -> contextlib.AbstractContextManager[None]:
        """While entered, copier takes its clones of the source from this one."""
        return _copier_cache(self.cache)


class TemplateClones:
    """Template clones in `folder`, one per source, each made the first time it is asked for.

    `paved update` makes one for each update; a fleet worker keeps one for all its updates,
    so a run clones each template once per worker, not once per repo.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.clones: dict[str, TemplateClone] = {}

    def get(self, source: str) -> TemplateClone:
        """The clone of `source` (made now, if this is the first time)."""
        if source not in self.clones:
            folder = self.folder / f"template-{len(self.clones)}"
            self.clones[source] = TemplateClone(source, folder)
        return self.clones[source]


def _copier_mirror(source: str, folder: Path) -> tuple[str, Path]:
    """The URL copier fetches `source` from, and where its mirror is with its cache in `folder`.

    copier's own rules (its cache layout is private: the update's fetch count test fails if
    it changes); a source copier does not mirror (a local folder) gets a path of our own.
    """
    from copier import _vcs

    url = _vcs.get_repo(source) or source
    with _copier_cache(folder):
        if _vcs._is_remote(url):
            return url, Path(_vcs._get_mirror_path(url))
    return url, folder / "template.git"


@contextlib.contextmanager
def _copier_cache(folder: Path) -> Iterator[None]:
    """Keep copier's cache of template mirrors in `folder` while entered (COPIER_CACHE_DIR)."""
    saved = os.environ.get("COPIER_CACHE_DIR")
    os.environ["COPIER_CACHE_DIR"] = str(folder)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("COPIER_CACHE_DIR", None)
        else:
            os.environ["COPIER_CACHE_DIR"] = saved


def copier_update(
    project: Path, target: str, *, trusted: bool, clone: TemplateClone | None = None
) -> None:
    """`copier update` of `project` to `target`, merging inline; trust only the platform's URL.

    With `clone`, copier reads the template from it rather than fetching it again.
    """
    from copier import run_update
    from copier.errors import CopierError

    try:
        with _copier_call(), clone.copier() if clone else contextlib.nullcontext():
            run_update(
                project,
                vcs_ref=target,
                defaults=True,
                overwrite=True,
                # Not skip_answered: with it copier would not re-read answers that a
                # migration moved (a renamed question); `defaults` keeps it from asking.
                quiet=True,
                # Migrations and tasks run code from the template: only the platform's own.
                unsafe=trusted,
                conflict="inline",
            )
    except CopierError as exc:
        hint = "" if trusted else " (only the platform's own URL is trusted with migrations)"
        raise PavedError(f"copier update failed: {exc}{hint}") from exc


@contextlib.contextmanager
def _copier_call() -> Iterator[None]:
    """Around one copier call: Jinja compiles a source once, git answers core.fileMode once."""
    _compile_once()
    _ask_file_mode_once()
    _FILE_MODES.append({})
    try:
        yield
    finally:
        _FILE_MODES.pop()


#: core.fileMode of each folder copier renders into, for the copier call under way (if any).
_FILE_MODES: list[dict[str, str]] = []


def _ask_file_mode_once() -> None:
    """From now on, during a copier call, git is asked for core.fileMode once per folder.

    For every file it renders, copier asks `git config --get core.fileMode` in the folder
    it renders into, to mirror an executable bit in the index when the setting is false:
    62 git processes per update, a quarter of the update's git processes. The setting does
    not change during one copier call, so the answer is kept per folder for the call
    (`_copier_call`). Where it is not false, copier's own step returns right after asking;
    it is skipped. Where it is false, copier's step runs as before. Installed only while
    copier has that step, under that name.
    """
    from copier._main import Worker

    original = getattr(Worker, "_sync_git_index_executable_bit", None)
    if original is None or getattr(original, "paved_memo", False):
        return

    def sync(self: Any, dst_relpath: Path, src_mode: int) -> None:
        if not _FILE_MODES:  # outside a copier call made here: as copier does it
            original(self, dst_relpath, src_mode)
            return
        known, folder = _FILE_MODES[-1], Path(self.subproject.local_abspath)
        if str(folder) not in known:
            try:
                ask = ("config", "--type=bool", "--get", "core.fileMode")
                setting = git(folder, *ask, check=False)
            except PavedError:  # no git, or it hung: copier's own step would not get far
                setting = ""
            known[str(folder)] = setting
        if known[str(folder)] == "false":
            original(self, dst_relpath, src_mode)

    sync.paved_memo = True  # type: ignore[attr-defined]
    Worker._sync_git_index_executable_bit = sync  # type: ignore[method-assign]


#: Compiled Jinja sources, by environment settings and arguments (see _compile_once).
_COMPILED: dict[tuple[Any, ...], Any] = {}
#: Past this many, the memo starts again (a template has about a hundred distinct sources).
_COMPILED_MAX = 4096


def _compile_once() -> None:
    """From now on, Jinja compiles each template source once per kind of environment.

    copier renders a question's default, help, condition and validator through Jinja every
    time it reads them, and each of an update's renders makes a new environment: one update
    compiled ~985 sources, 94 of them distinct, ~0.5 s of CPU, and a fleet worker compiles
    the same ones for every repo. The code Jinja compiles depends on the source and the
    environment's settings: its class, its lexer's settings, its extensions, optimizer,
    async mode, finalize and autoescape, and the names of its filters and tests (checked
    when compiling). Each compile is kept under all of those; a differing environment
    compiles anew.
    """
    from jinja2 import Environment
    from jinja2.lexer import get_lexer

    original: Any = Environment.compile  # overloaded on `raw`: called with it as given
    if getattr(original, "paved_memo", False):  # installed already
        return

    def compile(
        self: Environment,
        source: Any,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> Any:
        if not isinstance(source, str):  # a parsed tree: not hashable, not repeated
            return original(self, source, name, filename, raw, defer_init)
        key = (
            type(self),
            id(get_lexer(self)),  # Jinja keeps one lexer per set of lexer settings
            tuple((key, type(extension)) for key, extension in self.extensions.items()),
            self.optimized,
            self.is_async,
            self.finalize,
            self.autoescape,
            frozenset(self.filters),
            frozenset(self.tests),
            source,
            name,
            filename,
            raw,
            defer_init,
        )
        if key not in _COMPILED:
            if len(_COMPILED) >= _COMPILED_MAX:
                _COMPILED.clear()
            _COMPILED[key] = original(self, source, name, filename, raw, defer_init)
        return _COMPILED[key]

    compile.paved_memo = True  # type: ignore[attr-defined]
    Environment.compile = compile  # type: ignore[method-assign]


def lock_environment(dest: Path) -> None:
    """`uv lock` in `dest`."""
    run([require_uv(), "lock", "--quiet"], cwd=dest)


def require_uv() -> str:
    """The path of uv; a PavedError saying what to do when it is not on PATH."""
    uv = shutil.which("uv")
    if uv is None:
        raise PavedError("uv is not on PATH: install it, or pass --no-lock and run `uv lock` later")
    return uv


def identity(dest: Path) -> list[str]:
    """Commit as the user when git knows them, else as Paved (the commit only holds the render)."""
    known = git(dest, "config", "user.email", check=False)
    if known or os.environ.get("GIT_AUTHOR_EMAIL"):
        return []
    return ["-c", "user.name=Paved", "-c", "user.email=paved@localhost"]


def reject_files(project: Path) -> list[str]:
    """Every `*.rej` file under `project` (ignored ones too), outside tool folders.

    copier leaves one beside a file whose update it could not merge inline.
    """
    found = []
    for folder, subfolders, files in os.walk(project):
        subfolders[:] = [name for name in subfolders if name not in _TOOL_FOLDERS]
        found += [
            (Path(folder) / name).relative_to(project).as_posix()
            for name in files
            if name.endswith(".rej")
        ]
    return sorted(found)


@dataclass(frozen=True)
class Checkpoint:
    """Where a clean repo stood before a change, to put it back there if the change fails.

    `paved update` and `paved adopt` take one before they change anything (the tree is
    clean then: they refuse it otherwise). `restore` drops everything since: an unfinished
    merge, the index and work tree, new untracked files, the reject files copier left
    (which a `.gitignore` may hide from git), and the branches made since; and it returns
    to the branch, or the detached commit, the repo was on.
    """

    project: Path
    head: str
    branch: str  # "" for a detached HEAD
    branches: frozenset[str]
    rejects: frozenset[str]

    @classmethod
    def take(cls, project: Path) -> Checkpoint:
        """The repo at `project` as it stands now."""
        return cls(
            project,
            git(project, "rev-parse", "HEAD"),
            git(project, "symbolic-ref", "--quiet", "--short", "HEAD", check=False),
            frozenset(_branches(project)),
            frozenset(reject_files(project)),
        )

    def restore(self) -> None:
        """Put the repo back as it stood (see the class)."""
        project = self.project
        if git(project, "rev-parse", "--verify", "--quiet", "MERGE_HEAD", check=False):
            git(project, "merge", "--abort", check=False)
        git(project, "reset", "--quiet", "--hard")
        git(project, "clean", "--quiet", "-d", "--force")  # the tree was clean: only ours
        if self.branch:
            git(project, "switch", "--quiet", self.branch)
        else:
            git(project, "switch", "--quiet", "--detach", self.head)
        git(project, "reset", "--quiet", "--hard", self.head)
        for branch in sorted(set(_branches(project)) - self.branches):
            git(project, "branch", "--quiet", "-D", branch)
        for path in set(reject_files(project)) - self.rejects:
            (project / path).unlink(missing_ok=True)


def _branches(project: Path) -> list[str]:
    return git(project, "for-each-ref", "--format=%(refname:short)", "refs/heads/").splitlines()
