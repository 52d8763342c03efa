"""The Paved standard, as repo-review checks: one class per rule, IDs PV001 onwards.

Each class's docstring is its title; its `check` docstring is the fix hint repo-review
shows when the check fails. A check returns True (pass), False (fail with the hint) or a
string (fail with that message, which then names what was found). They read the repo
through repo-review's `root` (a folder, or a remote tree) and the fixtures below.
"""

from __future__ import annotations

import ast
import configparser
import re
from typing import TYPE_CHECKING, Any

import yaml

from paved._errors import PavedError
from paved.checks.lock import lock_drift
from paved.constants import TELEMETRY_OFF
from paved.deploy import manifest_problems
from paved.repo import (
    YAML_BYTES,
    TeamRepo,
    UnsafeYaml,
    bounded_text,
    is_link,
    load_yaml,
)
from paved.template import PLATFORM_URL

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["RULES", "paved_answers", "paved_repo", "paved_workflows"]

FAMILY = "paved"
#: Where each rule is explained (the platform's docs, next to the how-tos).
CHECKS_DOC = PLATFORM_URL.removesuffix(".git") + "/blob/main/docs/reference/checks.md"
_SHA = re.compile(r"^[0-9a-f]{40}$")
_PINNED_ACTION = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
_CANONICAL = re.compile(r"^(https://[^/\s]+/[^/\s]+/[^/\s]+|ssh://git@[^/\s]+/[^/\s]+/[^/\s]+)$")
PIPELINE_STAGES = ("ingest", "prepare", "train", "evaluate")
#: Write scopes a team repo's workflows may grant, and only outside pull-request runs.
WRITE_SCOPES = {"packages", "id-token"}
#: What a job calling one of the platform's reusable workflows may write too, by workflow:
#: a deploy's or a retrain's branch and pull request, the monitoring alert's issue (those
#: workflows run none of the repo's code).
PLATFORM_SCOPES = {
    "team-deploy.yml": {"contents", "pull-requests"},
    "team-retrain-propose.yml": {"contents", "pull-requests"},
    "team-alert.yml": {"issues"},
}
_PLATFORM_WORKFLOW = re.compile(r"^[\w.-]+/[\w.-]+/\.github/workflows/([\w.-]+)@[0-9a-f]{40}$")
# ------------------------------------------------------------------ fixtures


def paved_repo(root: Traversable) -> TeamRepo:
    """Fixture: the team repo, each of its files read once for every check (paved.repo)."""
    return TeamRepo(root)


def paved_answers(paved_repo: TeamRepo) -> dict[str, Any] | None:
    """Fixture: the answers file as a dict, or None when missing or unreadable."""
    try:
        return paved_repo.answers
    except PavedError:
        return None


def paved_workflows(paved_repo: TeamRepo) -> dict[str, dict[Any, Any]]:
    """Fixture: every workflow file by name, parsed (a file that does not parse maps to {})."""
    return paved_repo.workflows


#: The repo's entry in Backstage's catalog, and the annotation naming its platform release.
CATALOG_FILE = "catalog-info.yaml"
RELEASE_ANNOTATION = "paved.dev/release"


# ------------------------------------------------------------------ checks


class Paved:
    """The family every PV check belongs to."""

    family = FAMILY
    url = CHECKS_DOC


class PV001(Paved):
    """Answers file names the platform by its canonical URL"""

    @staticmethod
    def check(paved_answers: dict[str, Any] | None) -> bool | str:
        """
        `.copier-answers.yml` must exist and name the platform by the URL every team uses
        (`_src_path` equal to the `platform_repo_url` answer, `https://` or `ssh://git@`),
        never a path on one machine: `paved update` and `copier update` fetch from it.
        Generate with `paved new`, bring an existing repo in with `paved adopt`, or set
        `_src_path` to the platform's URL.
        """
        if paved_answers is None:
            return False
        source = str(paved_answers.get("_src_path", ""))
        canonical = str(paved_answers.get("platform_repo_url", ""))
        if not _CANONICAL.match(source):
            return f"`_src_path` is {source!r}, not a https:// or ssh://git@ URL of the platform"
        if source != canonical:
            return f"`_src_path` {source!r} is not the `platform_repo_url` answer {canonical!r}"
        if not paved_answers.get("_commit"):
            return "the answers file records no `_commit`: which release made this repo?"
        return True


class PV002(Paved):
    """The platform pins name one release"""

    requires = frozenset({"PV001"})

    @staticmethod
    def check(paved_repo: TeamRepo, paved_answers: dict[str, Any]) -> bool | str:
        """
        `_commit`, the paved and paved-ml pins in `pyproject.toml`, the reusable workflows'
        refs and `uv.lock` must all name the same platform release (one SHA, its tag in the
        comment beside it). Move them together with `paved update`, never by hand.
        """
        release = str(paved_answers["_commit"])
        pins = paved_repo.pins
        names = {pin.name.rsplit("/", 1)[-1] for pin in pins}
        wanted = {"paved", "paved-ml", "team-ci.yml", "team-release.yml"}
        if missing := sorted(wanted - names):
            return f"no platform pin for {', '.join(missing)}"
        problems = []
        shas = {pin.sha for pin in pins}
        if len(shas) > 1 or not all(_SHA.match(sha) for sha in shas):
            problems += [f"{pin.where} pins {pin.sha}" for pin in pins]
        problems += [
            f"{pin.where} says {pin.release}, the answers file {release}"
            for pin in pins
            if pin.release is not None and pin.release != release
        ]
        problems += [
            f"{pin.where} names no release beside its SHA"
            for pin in pins
            if pin.release is None and pin.where != "uv.lock"
        ]
        if problems:
            return "the pins disagree:\n" + "\n".join(f"- {line}" for line in problems)
        return True


class PV003(Paved):
    """uv.lock is current with pyproject.toml"""

    @staticmethod
    def check(paved_repo: TeamRepo, pyproject: dict[str, Any]) -> bool | str:
        """
        `uv.lock` must exist and lock what `pyproject.toml` declares (dependencies, groups,
        Python), or CI's `uv sync --locked` fails. Run `uv lock` and commit `uv.lock`.
        """
        if not paved_repo.root.joinpath("uv.lock").is_file():
            return False
        drift = lock_drift(pyproject, paved_repo.lock_text or "")
        if drift:
            return "uv.lock is stale; run `uv lock`:\n" + "\n".join(f"- {d}" for d in drift)
        return True


class PV004(Paved):
    """Every action and reusable workflow is pinned by SHA"""

    @staticmethod
    def check(paved_repo: TeamRepo) -> bool | str:
        """
        Every `uses:` in `.github/workflows` must name a full 40-character commit SHA (a tag
        or branch can be moved under you), with the release in a comment beside it:
        `uses: owner/repo@<sha> # v1.2.3`. Local actions (`./...`) are exempt.
        """
        if not paved_repo.root.joinpath(".github", "workflows").is_dir():
            return "no .github/workflows folder"
        loose = []
        for name, text in paved_repo.workflow_texts.items():
            if text is None:
                loose.append(f"{name}: over {_FILE_BYTES} bytes or not a file: unread")
                continue
            for number, line in enumerate(text.splitlines(), 1):
                code = line.split(" #", 1)[0].strip()
                if not code.lstrip("- ").startswith("uses:"):
                    continue
                ref = code.lstrip("- ").removeprefix("uses:").strip().strip("'\"")
                if ref.startswith("./"):
                    continue
                if not _PINNED_ACTION.match(ref) or "#" not in line:
                    loose.append(f"{name}:{number}: {ref}")
        if loose:
            return "not pinned to a SHA with its release:\n" + "\n".join(f"- {u}" for u in loose)
        return True


class PV005(Paved):
    """Workflows grant least privilege"""

    @staticmethod
    def check(paved_workflows: dict[str, dict[Any, Any]]) -> bool | str:
        """
        Each workflow sets `permissions: {}` at the top and each job asks for what it needs
        (`contents: read`; `packages`/`id-token: write` only in the release job;
        `contents`/`pull-requests: write` only in a job calling the platform's
        `team-deploy.yml` or `team-retrain-propose.yml`, `issues: write` only in one calling
        `team-alert.yml`: those run none of the repo's code). No
        `write-all`, no write scope in a workflow that pull requests run, and no
        `pull_request_target` or `workflow_run` trigger (they run with secrets on foreign code).
        """
        if not paved_workflows:
            return "no workflows"
        problems = []
        for name, flow in paved_workflows.items():
            triggers = flow.get(True, flow.get("on", {}))  # YAML 1.1 reads `on` as True
            events = set(triggers) if isinstance(triggers, dict | list) else {triggers}
            if bad := events & {"pull_request_target", "workflow_run"}:
                problems.append(f"{name}: triggered by {', '.join(sorted(bad))}")
            if flow.get("permissions") != {}:
                problems.append(f"{name}: top-level permissions are not {{}}")
            for job_name, job in (flow.get("jobs") or {}).items():
                granted = job.get("permissions") if isinstance(job, dict) else None
                if not isinstance(granted, dict):
                    problems.append(f"{name}: job {job_name} declares no permissions map")
                    continue
                writes = {scope for scope, level in granted.items() if level == "write"}
                allowed = WRITE_SCOPES
                if called := _PLATFORM_WORKFLOW.search(str(job.get("uses", ""))):
                    allowed = allowed | PLATFORM_SCOPES.get(called[1], set())
                if extra := writes - allowed:
                    problems.append(f"{name}: job {job_name} may write {', '.join(sorted(extra))}")
                if writes and events & {"pull_request", "pull_request_target"}:
                    problems.append(f"{name}: job {job_name} may write on pull requests")
        if problems:
            return "\n".join(f"- {line}" for line in problems)
        return True


class PV006(Paved):
    """The DVC remote is configured"""

    @staticmethod
    def check(root: Traversable) -> bool | str:
        """
        `.dvc/config` must name a default remote (`core.remote`) with a `url`, so that
        `dvc push` and CI's `dvc pull` of the champion reach shared storage. Set it with
        `dvc remote add --default storage <url>` (credentials stay out of the file).
        """
        config = _dvc_config(root)
        if config is None:
            return "no .dvc/config"
        remote = config.get("core", "remote", fallback="").strip()
        if not remote:
            return "`.dvc/config` names no default remote (core.remote)"
        section = f'remote "{remote}"'
        if not config.get(section, "url", fallback="").strip():
            return f"the default remote {remote!r} has no url in .dvc/config"
        return True


class PV007(Paved):
    """The pipeline's stages are present"""

    @staticmethod
    def check(root: Traversable) -> bool | str:
        """
        `dvc.yaml` must keep the standard stages `ingest`, `prepare`, `train` and `evaluate`
        (evaluate holds the champion/challenger gate), each with a `cmd`. Add team stages
        around them rather than replacing them.
        """
        path = root.joinpath("dvc.yaml")
        if not path.is_file():
            return "no dvc.yaml"
        try:
            stages = _mapping(_read_yaml(path)).get("stages", {})
        except yaml.YAMLError as exc:
            return f"dvc.yaml does not parse: {exc}"
        if not isinstance(stages, dict):
            return "dvc.yaml has no stages map"
        missing = [
            name
            for name in PIPELINE_STAGES
            if not isinstance(stages.get(name), dict) or not stages[name].get("cmd")
        ]
        if missing:
            return f"dvc.yaml lacks the stage(s) {', '.join(missing)}"
        return True


class PV008(Paved):
    """The MLflow URI comes from the environment"""

    @staticmethod
    def check(root: Traversable, pyproject: dict[str, Any]) -> bool | str:
        """
        Code must not set the tracking or registry URI itself (`mlflow.set_tracking_uri(...)`,
        `os.environ["MLFLOW_TRACKING_URI"] = ...`): paved-ml takes `MLFLOW_TRACKING_URI` from
        the environment, else `[tool.paved] tracking-uri`, so CI and each laptop can point
        elsewhere. Credentials never go in `tracking-uri`; they go in the environment.
        """
        table = pyproject.get("tool", {}).get("paved", {})
        uri = str(table.get("tracking-uri", "")) if isinstance(table, dict) else ""
        if not uri:
            return "pyproject.toml has no [tool.paved] tracking-uri"
        if re.match(r"^[a-z+]+://[^/@]*@", uri):
            return "[tool.paved] tracking-uri holds credentials: move them to the environment"
        found = []
        files, unread = _python_files(root.joinpath("src"))
        for path, text in files:
            try:
                tree = ast.parse(text)
            except SyntaxError:
                continue
            found += [f"{path}:{line}" for line in _uri_settings(tree)]
        if found:
            return "the tracking URI is set in code:\n" + "\n".join(f"- {f}" for f in found)
        if unread:  # what it could not read could set it: not a pass
            return "src/ holds code this check does not read:\n" + "\n".join(
                f"- {item}" for item in unread[:10]
            )
        return True


class PV009(Paved):
    """The model service is present and limits request size"""

    @staticmethod
    def check(root: Traversable) -> bool | str:
        """
        `bentofile.yaml` must name the service (`service: "<package>.service:<Class>"`), its
        module must exist under `src/`, and the service must refuse oversized bodies:
        `<Class>.add_asgi_middleware(RequestSizeLimit)` (from `paved_ml.serving`) answers
        413 before a large body is parsed.
        """
        path = root.joinpath("bentofile.yaml")
        if not path.is_file():
            return "no bentofile.yaml"
        try:
            service = str(_mapping(_read_yaml(path))["service"])
        except (yaml.YAMLError, KeyError, TypeError):
            return "bentofile.yaml names no service"
        module, _, cls = service.partition(":")
        source = root.joinpath("src", *module.split(".")[:-1], module.split(".")[-1] + ".py")
        if not cls or not source.is_file():
            return f"bentofile.yaml's service {service!r} has no module src/{module}.py"
        try:
            tree = ast.parse(bounded_text(source) or "")
        except SyntaxError as exc:
            return f"src/{module}.py does not parse: {exc}"
        if not any(
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_asgi_middleware"
            and node.args
            and _name_of(node.args[0]) == "RequestSizeLimit"
            for node in ast.walk(tree)
        ):
            return f"{cls} in src/{module}.py adds no RequestSizeLimit middleware"
        return True


class PV010(Paved):
    """Pre-commit hooks come from the repo's own environment"""

    @staticmethod
    def check(root: Traversable) -> bool | str:
        """
        Every hook in `.pre-commit-config.yaml` must be a `repo: local` hook run through
        `uv run` (`language: system`): its version then comes from `uv.lock`, it runs
        offline, and CI and laptops run the same tools.
        """
        path = root.joinpath(".pre-commit-config.yaml")
        if not path.is_file():
            return "no .pre-commit-config.yaml"
        try:
            repos = _mapping(_read_yaml(path)).get("repos", [])
        except yaml.YAMLError as exc:
            return f".pre-commit-config.yaml does not parse: {exc}"
        if not repos:
            return "no hooks"
        remote = [str(repo.get("repo")) for repo in repos if repo.get("repo") != "local"]
        if remote:
            return "hooks installed from elsewhere: " + ", ".join(remote)
        return True


class PV011(Paved):
    """Telemetry is off"""

    @staticmethod
    def check(paved_repo: TeamRepo, pyproject: dict[str, Any]) -> bool | str:
        """
        DVC's `core.analytics` must be `false` in `.dvc/config`, `paved-ml` must be a
        dependency (it turns BentoML's and MLflow's telemetry off wherever it is installed),
        and no workflow may turn BENTOML_DO_NOT_TRACK, MLFLOW_DISABLE_TELEMETRY or
        DVC_NO_ANALYTICS back on.
        """
        config = _dvc_config(paved_repo.root)
        if config is None or config.get("core", "analytics", fallback="").strip() != "false":
            return "`.dvc/config` does not set core.analytics = false"
        dependencies = pyproject.get("project", {}).get("dependencies", [])
        if not any(re.match(r"^paved-ml\b", str(dep)) for dep in dependencies):
            return "paved-ml is not a dependency of the project"
        for path, text in paved_repo.workflow_texts.items():
            if text is None:
                return f"{path} is over {_FILE_BYTES} bytes or not a file: unread"
            for name, value in TELEMETRY_OFF.items():
                for found in re.findall(rf"{name}\s*:\s*['\"]?([\w-]+)", text):
                    if found.lower() != value:
                        return f"{path} sets {name}={found}"
        return True


class PV012(Paved):
    """The Kubernetes manifests are hardened and pinned by digest"""

    @staticmethod
    def check(paved_repo: TeamRepo) -> bool | str:
        """
        `deploy/base` holds one Deployment whose pod runs non-root with `RuntimeDefault`
        seccomp; its containers have a read-only root filesystem, no privilege escalation,
        every capability dropped, requests and a memory limit, no literal credential, and
        probes on the service's `/livez` and `/readyz` (port 3000). Each overlay
        (`deploy/overlays/staging`, `production`) pins that image by digest, to the image
        `[tool.paved] image` names, and no overlay touches the pod's security settings.
        Every other pod the base runs (the smoke test's Job) is hardened the same way. No
        Secret is committed. A repo answered `deploy_target: none` has nothing to check.
        """
        problems = manifest_problems(paved_repo)
        return "\n".join(f"- {problem}" for problem in problems[:10]) if problems else True


class PV013(Paved):
    """The repo is in Backstage's catalog, on its release"""

    requires = frozenset({"PV001"})

    @staticmethod
    def check(paved_repo: TeamRepo, paved_answers: dict[str, Any]) -> bool | str:
        """
        `catalog-info.yaml` must describe one Backstage Component (`backstage.io/v1alpha1`)
        of type `service`, owned by the `team` answer, whose `paved.dev/release` annotation
        names the release in `_commit`, and whose `backstage.io/techdocs-ref` (`dir:.`)
        finds a `mkdocs.yml`. `paved update` keeps the release annotation current; a repo
        made before the file existed gets it with its next update.
        """
        path = paved_repo.root.joinpath(CATALOG_FILE)
        if not path.is_file():
            return f"no {CATALOG_FILE}"
        try:
            entity = _mapping(_read_yaml(path))
        except yaml.YAMLError as exc:
            return f"{CATALOG_FILE} does not parse: {exc}"
        docs = paved_repo.root.joinpath("mkdocs.yml").is_file()
        problems = _catalog_problems(entity, paved_answers, docs=docs)
        return problems[0] if problems else True


RULES = (
    PV001, PV002, PV003, PV004, PV005, PV006, PV007, PV008, PV009, PV010, PV011, PV012, PV013
)  # fmt: skip


# ------------------------------------------------------------------ helpers


def _mapping(data: Any) -> dict[Any, Any]:
    """`data` if a YAML file held a mapping, else {} (a list or a scalar names nothing)."""
    return data if isinstance(data, dict) else {}


def _read_yaml(path: Traversable) -> Any:
    """A YAML file of the repo, parsed safely (`paved.repo.load_yaml`); too big is an error."""
    text = bounded_text(path)
    if text is None:
        raise UnsafeYaml(f"{path.name} is over {_FILE_BYTES} bytes")
    return load_yaml(text)


def _catalog_problems(entity: dict[Any, Any], answers: dict[str, Any], *, docs: bool) -> list[str]:
    """What is wrong with a catalog entry for this repo, first things first."""
    metadata, spec = _mapping(entity.get("metadata")), _mapping(entity.get("spec"))
    annotations = _mapping(metadata.get("annotations"))
    team, release = answers.get("team"), str(answers.get("_commit", ""))
    found = annotations.get(RELEASE_ANNOTATION)
    checks = (
        (
            (entity.get("apiVersion"), entity.get("kind"), spec.get("type"))
            == ("backstage.io/v1alpha1", "Component", "service"),
            f"{CATALOG_FILE} is not a backstage.io/v1alpha1 Component of type service",
        ),
        (spec.get("owner") == team, f"spec.owner is {spec.get('owner')!r}, not the team {team!r}"),
        (
            str(found or "") == release,
            f"the {RELEASE_ANNOTATION} annotation is {found!r}, not the release {release!r}",
        ),
        (
            annotations.get("backstage.io/techdocs-ref") == "dir:." and docs,
            "backstage.io/techdocs-ref is not dir:. beside a mkdocs.yml",
        ),
    )
    return [message for passed, message in checks if not passed]


def _dvc_config(root: Traversable) -> configparser.ConfigParser | None:
    path = root.joinpath(".dvc", "config")
    if not path.is_file():
        return None
    config = configparser.ConfigParser()
    try:
        config.read_string(bounded_text(path) or "")
    except configparser.Error:
        return None
    # DVC writes sections as ['remote "storage"']; configparser keeps the quotes.
    for section in config.sections():
        if section.startswith("'") and section.endswith("'"):
            config[section[1:-1]] = config[section]
    return config


#: How far a walk of a team repo goes: it is untrusted input (links, loops, huge files).
_WALK_DEPTH, _WALK_FILES, _FILE_BYTES = 16, 5000, YAML_BYTES


def _python_files(
    folder: Traversable, prefix: str = "src"
) -> tuple[list[tuple[str, str]], list[str]]:
    """The `.py` files under `folder` with their text, and what the walk did not read.

    Bounded: no link is followed (a link may point out of the repo or back at its own
    folder), at most `_WALK_DEPTH` folders deep and `_WALK_FILES` entries; files over
    `_FILE_BYTES` are not read. Each of those is named in the second list.
    """
    found: list[tuple[str, str]] = []
    unread: list[str] = []
    pending = [(folder, prefix, 0)]
    seen = 0
    while pending:
        here, name, depth = pending.pop()
        if not here.is_dir():
            continue
        if is_link(here) or depth > _WALK_DEPTH:
            unread.append(f"{name} (a link)" if is_link(here) else f"{name} (too deep)")
            continue
        for entry in sorted(here.iterdir(), key=lambda item: item.name):
            seen += 1
            path = f"{name}/{entry.name}"
            if seen > _WALK_FILES:
                unread.append(f"{name} (over {_WALK_FILES} entries)")
                return sorted(found), unread
            if is_link(entry):
                if entry.name.endswith(".py") or entry.is_dir():
                    unread.append(f"{path} (a link)")
                continue
            if entry.is_dir():
                pending.append((entry, path, depth + 1))
            elif entry.name.endswith(".py") and entry.is_file():  # not a FIFO or a device
                text = bounded_text(entry)
                if text is None:
                    unread.append(f"{path} (over {_FILE_BYTES} bytes)")
                else:
                    found.append((path, text))
    return sorted(found), unread


def _uri_settings(tree: ast.AST) -> list[int]:
    """Lines that set MLflow's tracking or registry URI in code."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name_of(node.func) in {
            "set_tracking_uri",
            "set_registry_uri",
        }:
            lines.append(node.lineno)
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.slice, ast.Constant)
                    and target.slice.value in {"MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"}
                ):
                    lines.append(node.lineno)
    return lines


def _name_of(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""
