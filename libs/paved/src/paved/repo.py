"""Reading a team repo: the one place that knows its answers file, its pins and its git state.

Everything else (`paved ci`, `paved update`, `paved adopt`, the checks) asks here for the
answers, `[tool.paved]`, the Python version and the platform pins, so a team repo has one
reading, whoever reads it. `TeamRepo` (copier's `Subproject` is the model) reads each file
once, bounded, and keeps what it read: the checks' fixtures and `paved status` share one.
"""

from __future__ import annotations

import json
import re
import tomllib
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from packaging.utils import canonicalize_name

from paved._errors import PavedError
from paved._git import git

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "ANSWERS_FILE",
    "CHAMPION_RECORD",
    "LOCK_BYTES",
    "MANIFEST_FILES",
    "PLATFORM_PACKAGES",
    "YAML_BYTES",
    "Pin",
    "TeamRepo",
    "UnsafeYaml",
    "bounded_text",
    "is_link",
    "load_yaml",
    "parse_answers",
    "platform_pins",
    "platform_version",
    "python_version",
    "read_answers",
    "read_pyproject",
    "require_clean",
    "tool_paved",
    "uncommitted",
    "unmerged_paths",
]

#: Where copier records a team repo's answers, template source and release.
ANSWERS_FILE = ".copier-answers.yml"

#: The platform's packages a team repo pins to its release (and `paved update` moves).
PLATFORM_PACKAGES = ("paved", "paved-ml")

_SHA = r"[0-9a-f]{40}"
#: `"paved-ml[tracking] @ git+URL@SHA#subdirectory=libs/paved-ml",  # v0.1.0`
_PYPROJECT_PIN = re.compile(
    rf"\"(?P<name>paved(?:-ml)?)(?:\[[^\]]*\])? @ git\+(?P<url>[^@\"]+)@(?P<sha>{_SHA})"
    r"#subdirectory=libs/[\w-]+\"[^#\n]*(?:#\s*(?P<release>\S+))?"
)
#: `uses: acme/paved/.github/workflows/team-ci.yml@SHA # v0.1.0`
_WORKFLOW_PIN = re.compile(
    r"uses:\s*(?P<name>[\w.-]+/[\w.-]+/\.github/workflows/team-[\w-]+\.ya?ml)@(?P<sha>\S+)"
    r"(?:\s+#\s*(?P<release>\S+))?"
)


@dataclass(frozen=True)
class Pin:
    """One place a team repo names the platform release it runs."""

    where: str  # file:line
    name: str  # paved, paved-ml, uv.lock paved, acme/paved/.github/workflows/team-ci.yml
    sha: str
    release: str | None  # the tag written beside the SHA, if any


#: The largest file of a team repo the platform reads whole (answers, workflows, code).
YAML_BYTES = 1 << 20
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_YAML_DEPTH = 64
_OPENS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSES = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
#: Control characters, which no template source or release name holds (a NUL breaks exec).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnsafeYaml(yaml.YAMLError):
    """A team repo's YAML the platform refuses to parse (anchors and aliases, or too big)."""


def load_yaml(text: str) -> Any:
    """A team repo's YAML, parsed safely (libyaml's parser when PyYAML has it).

    A team repo is untrusted input: anchors and aliases are refused (an 893-byte alias bomb
    expands to gigabytes), and so is text over `YAML_BYTES`. Raises yaml.YAMLError.
    """
    if len(text.encode("utf-8", errors="surrogatepass")) > YAML_BYTES:
        raise UnsafeYaml(f"it is over {YAML_BYTES} bytes")
    depth = 0
    for token in yaml.scan(text, Loader=_YAML_LOADER):
        if isinstance(token, yaml.AnchorToken | yaml.AliasToken):
            raise UnsafeYaml(
                f"line {token.start_mark.line + 1}: anchors and aliases are refused "
                "(a team repo's YAML is untrusted input)"
            )
        # libyaml's parser recurses once per level, unbounded: deep nesting crashes it.
        if isinstance(token, _OPENS):
            depth += 1
            if depth > _YAML_DEPTH:
                raise UnsafeYaml(
                    f"line {token.start_mark.line + 1}: nested over {_YAML_DEPTH} levels deep"
                )
        elif isinstance(token, _CLOSES):
            depth -= 1
    try:
        return yaml.load(text, Loader=_YAML_LOADER)
    except RecursionError as exc:  # the pure-Python parser, where libyaml is missing
        raise UnsafeYaml("nested too deep to parse") from exc


#: Where a team repo keeps its champion's record (paved-ml's champion.json).
CHAMPION_RECORD = ("models", "champion", "champion.json")

#: The most manifest files `TeamRepo.manifests` reads (a base and a few overlays need ~12).
MANIFEST_FILES = 64

#: uv.lock is the one large file read whole (300 kB for a team repo's few hundred packages).
LOCK_BYTES = 64 << 20


class TeamRepo:
    """A team repo's files, each read once (at most a bound of bytes) and kept.

    `root` is a folder: a Path, or any Traversable (repo-review passes one). The repo is
    untrusted input: a file over its bound, a FIFO or a device reads as None, never whole.
    """

    def __init__(self, root: Traversable) -> None:
        self.root = root

    # Two readings of one root are the same repo: repo-review compares its fixtures before
    # and after each check, and what a check has read (cached here) is no change.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, TeamRepo) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    @cached_property
    def answers(self) -> dict[str, Any]:
        """The answers file: its `_src_path`, `_commit` and the answers.

        A PavedError if it is missing, too big, or not a mapping of plain values.
        """
        path = self.root.joinpath(ANSWERS_FILE)
        if not path.is_file():  # a link to a device or a folder is no answers file either
            raise PavedError(
                f"{self.root} has no {ANSWERS_FILE}: it was not generated from a template"
            )
        text = bounded_text(path)
        if text is None:
            raise PavedError(f"{path} is not valid YAML: it is over {YAML_BYTES} bytes")
        return parse_answers(text, path if isinstance(path, Path) else ANSWERS_FILE)

    @cached_property
    def pyproject_text(self) -> str | None:
        """`pyproject.toml`'s text, or None (missing, or over the bound)."""
        return bounded_text(self.root.joinpath("pyproject.toml"))

    @cached_property
    def pyproject(self) -> dict[str, Any]:
        """`pyproject.toml`, parsed ({} without one); a broken or oversized one is a PavedError."""
        path = self.root.joinpath("pyproject.toml")
        text = self.pyproject_text
        if text is None:
            if path.is_file():
                raise PavedError(f"{path} is not valid TOML: it is over {YAML_BYTES} bytes")
            return {}
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PavedError(f"{path} is not valid TOML: {exc}") from exc

    @cached_property
    def model_name(self) -> str:
        """`[tool.paved] model-name`: the registered model. A PavedError when it is not set."""
        where = Path(str(self.root))
        model = tool_paved(self.pyproject, where).get("model-name")
        if not isinstance(model, str) or not model:
            raise PavedError(f"{where / 'pyproject.toml'} names no [tool.paved] model-name")
        return model

    @cached_property
    def python_pin(self) -> str | None:
        """What `.python-version` names (stripped), or None without one."""
        text = bounded_text(self.root.joinpath(".python-version"), 1024)
        return None if text is None else text.strip()

    @cached_property
    def lock_text(self) -> str | None:
        """`uv.lock`'s text, or None (missing, or over LOCK_BYTES)."""
        return bounded_text(self.root.joinpath("uv.lock"), LOCK_BYTES)

    @cached_property
    def workflow_texts(self) -> dict[str, str | None]:
        """Each `.github/workflows/*.yml` (or `.yaml`) by name, in name order.

        Its text, or None when it is not a regular file within the bound (unread).
        """
        folder = self.root.joinpath(".github", "workflows")
        if not folder.is_dir():
            return {}
        return {
            entry.name: bounded_text(entry)
            for entry in sorted(folder.iterdir(), key=lambda entry: entry.name)
            if entry.name.endswith((".yml", ".yaml"))
        }

    @cached_property
    def workflows(self) -> dict[str, dict[Any, Any]]:
        """Each workflow by name, parsed (one that is unread or does not parse maps to {})."""
        parsed: dict[str, dict[Any, Any]] = {}
        for name, text in self.workflow_texts.items():
            try:
                data = load_yaml(text) if text is not None else None
            except yaml.YAMLError:
                data = None
            parsed[name] = data if isinstance(data, dict) else {}
        return parsed

    @cached_property
    def champion(self) -> dict[str, Any]:
        """The champion's record (`models/champion/champion.json`), or {} without one.

        It names the model and its version (and metrics); a record that is not a JSON
        object is a PavedError.
        """
        path = self.root.joinpath(*CHAMPION_RECORD)
        text = bounded_text(path, 1 << 16)
        if text is None:
            return {}
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PavedError(f"{'/'.join(CHAMPION_RECORD)} is not JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise PavedError(f"{'/'.join(CHAMPION_RECORD)} is not a JSON object")
        return record

    @cached_property
    def manifests(self) -> dict[str, Any]:
        """The Kubernetes manifests under `deploy/`, by path, each parsed.

        `deploy/base/*.yaml` and `deploy/overlays/<environment>/*.yaml` (None when over the bound,
        not a regular file, or not one YAML document). No link is followed, and at most
        `MANIFEST_FILES` files are read.
        """
        found: dict[str, Any] = {}
        folders = [("deploy/base", self.root.joinpath("deploy", "base"))]
        overlays = self.root.joinpath("deploy", "overlays")
        if overlays.is_dir() and not is_link(overlays):
            folders += [
                (f"deploy/overlays/{entry.name}", entry)
                for entry in sorted(overlays.iterdir(), key=lambda entry: entry.name)
                if entry.is_dir() and not is_link(entry)
            ][:MANIFEST_FILES]
        for name, folder in folders:
            if not folder.is_dir() or is_link(folder):
                continue
            for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
                if len(found) >= MANIFEST_FILES:
                    return found
                if entry.name.endswith((".yaml", ".yml")):
                    text = None if is_link(entry) else bounded_text(entry)
                    try:
                        found[f"{name}/{entry.name}"] = None if text is None else load_yaml(text)
                    except yaml.YAMLError:
                        found[f"{name}/{entry.name}"] = None
        return found

    @cached_property
    def pins(self) -> list[Pin]:
        """Every pin of the platform: pyproject, workflows and uv.lock, in that order.

        A repo that runs one release names one SHA everywhere, with its tag beside it where
        a comment can hold one (uv.lock has no comments).
        """
        pins = _scan("pyproject.toml", self.pyproject_text or "", _PYPROJECT_PIN)
        for name, text in self.workflow_texts.items():
            pins += _scan(f".github/workflows/{name}", text or "", _WORKFLOW_PIN)
        return pins + _lock_pins(self.lock_text or "")


def is_link(entry: Traversable) -> bool:
    """Whether `entry` is a symbolic link (a remote tree has none)."""
    is_symlink = getattr(entry, "is_symlink", None)
    return bool(is_symlink and is_symlink())


def read_answers(project: Path) -> dict[str, Any]:
    """The answers file of `project` (its `_src_path`, `_commit` and the answers)."""
    return TeamRepo(project).answers


def bounded_text(entry: Traversable, limit: int = YAML_BYTES) -> str | None:
    """The text of a regular file of at most `limit` bytes, else None (a FIFO, a device).

    `entry` is a Path, or any Traversable (repo-review passes one).
    """
    if not entry.is_file():
        return None
    with entry.open("rb") as handle:
        data = handle.read(limit + 1)
    return None if len(data) > limit else data.decode("utf-8", errors="replace")


def parse_answers(text: str, where: Path | str) -> dict[str, Any]:
    """An answers file's text, parsed and checked, or a PavedError naming `where`.

    It must be a mapping whose `_src_path` and `_commit` (when present) are plain values.
    """
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise PavedError(f"{where} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PavedError(f"{where} holds no answers")
    for key in ("_src_path", "_commit"):
        value = data.get(key)
        if isinstance(value, dict | list):
            raise PavedError(f"{where}: {key} is a {type(value).__name__}, not a plain value")
        if value is not None and (_CONTROL.search(str(value)) or str(value).startswith("-")):
            raise PavedError(f"{where}: {key} {str(value)!r} is not a template source or release")
    return data


def read_pyproject(project: Path) -> dict[str, Any]:
    """`pyproject.toml` of `project`, parsed; a missing or broken file is a PavedError."""
    if not (project / "pyproject.toml").is_file():
        raise PavedError(f"{project} has no pyproject.toml: is this a Paved team repo?")
    return TeamRepo(project).pyproject


def tool_paved(pyproject: dict[str, Any], project: Path) -> dict[str, object]:
    """The `[tool.paved]` table (team, project, model name, tracking URI, image)."""
    tool = pyproject.get("tool", {})
    settings = tool.get("paved") if isinstance(tool, dict) else None
    if not isinstance(settings, dict):
        raise PavedError(
            f"{project / 'pyproject.toml'} has no [tool.paved] table: is this a Paved team repo?"
        )
    return settings


def python_version(project: Path) -> str:
    """The repo's Python (`.python-version`), which its image's base must match."""
    path = project / ".python-version"
    pin = TeamRepo(project).python_pin
    version = pin or ""
    if not re.fullmatch(r"3\.\d+(\.\d+)?", version):
        found = f"holds {version!r}" if pin is not None else "is missing"
        raise PavedError(
            f"{path} {found}: it names the repo's Python (e.g. 3.11), which the image's base "
            "must match"
        )
    return version


def platform_version(project: Path) -> str:
    """The platform release that rendered the repo (`_commit`), or "unknown"."""
    try:
        return str(read_answers(project).get("_commit", "unknown"))
    except PavedError:
        return "unknown"


def platform_pins(root: Traversable) -> list[Pin]:
    """Every pin of the platform in the repo at `root` (see `TeamRepo.pins`)."""
    return TeamRepo(root).pins


def _scan(where: str, text: str, pattern: re.Pattern[str]) -> list[Pin]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        for match in pattern.finditer(line):
            found.append(
                Pin(
                    where=f"{where}:{number}",
                    name=match["name"],
                    sha=match["sha"],
                    release=match["release"],
                )
            )
    return found


def read_lock(text: str, packages: Collection[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """uv.lock's top-level settings, and its `[[package]]` entries named in `packages`.

    A team's lock holds a few hundred packages (300 kB of TOML, 50 ms to parse whole) and
    a check needs two or three: each entry is parsed alone, the others are only skipped
    over (uv writes every entry from `[[package]]` and its `name` first). A lock that does
    not split that way is parsed whole. Raises tomllib.TOMLDecodeError when it does not parse.
    """
    wanted = {canonicalize_name(name) for name in packages}
    head, *entries = _LOCK_ENTRY.split(text)
    try:
        found = [
            tomllib.loads("[[package]]\n" + entry)["package"][0]
            for entry in entries
            if (match := _LOCK_NAME.match(entry)) and canonicalize_name(match[1]) in wanted
        ]
        return tomllib.loads(head), found
    except tomllib.TOMLDecodeError:
        data = tomllib.loads(text)
        every = data.pop("package", [])
        return data, [
            entry for entry in every if canonicalize_name(str(entry.get("name", ""))) in wanted
        ]


_LOCK_ENTRY = re.compile(r"^\[\[package\]\]\n", re.MULTILINE)
_LOCK_NAME = re.compile(r'name = "([^"]+)"')


def _lock_pins(text: str) -> list[Pin]:
    try:
        _, packages = read_lock(text, PLATFORM_PACKAGES)
    except tomllib.TOMLDecodeError:
        return []
    pins = []
    for package in packages:
        source = package.get("source", {})
        if package.get("name") not in PLATFORM_PACKAGES or "git" not in source:
            continue
        url = urllib.parse.urlsplit(source["git"])
        sha = url.fragment or urllib.parse.parse_qs(url.query).get("rev", [""])[0]
        pins.append(Pin(where="uv.lock", name=f"uv.lock {package['name']}", sha=sha, release=None))
    return pins


def uncommitted(project: Path) -> list[str]:
    """Paths with uncommitted changes (staged, unstaged or untracked, not ignored)."""
    try:
        out = git(project, "status", "--porcelain", "--untracked-files=all")
    except PavedError as exc:  # one process, not a check first: update runs this thrice
        raise PavedError(f"{project} is not a git repository") from exc
    return [line.split(maxsplit=1)[-1] for line in out.splitlines() if line.strip()]


def require_clean(project: Path, *, then: str = "commit or stash them first") -> None:
    """Refuse a repo with uncommitted changes, naming them (and what to do: `then`)."""
    if changed := uncommitted(project):
        shown = ", ".join(changed[:8]) + (", ..." if len(changed) > 8 else "")
        raise PavedError(f"{project} has uncommitted changes ({shown}): {then}")


def unmerged_paths(project: Path) -> list[str]:
    """The paths git holds as unmerged (a conflicted merge), sorted."""
    entries = git(project, "ls-files", "-u").splitlines()
    return sorted({line.split("\t", 1)[1] for line in entries if "\t" in line})
