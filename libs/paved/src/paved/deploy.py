"""Deploy: what a team repo's Kubernetes manifests (`deploy/`) say, and what they must say.

A team repo declares where its service runs: a Kustomize base (Deployment, Service,
HorizontalPodAutoscaler, PodDisruptionBudget) and one overlay per environment that pins
the image by digest. They change only by pull request, and a GitOps controller (Argo CD or
Flux) applies them (decision 0029). This module reads them through `paved.repo.TeamRepo`
and says where they break the standard: the `PV012` check, hence `paved check`, the
fleet's score and the `standard` step of team CI.

It reads the files as written, without running kustomize: a team repo is untrusted input,
and `paved check` runs where no kubectl is. An overlay's patch that touches the pod's
security settings is refused for the same reason: what the base declares is what runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paved._credentials import AMBIENT, Held
from paved._errors import PavedError
from paved._git import git
from paved._proc import run
from paved.ci.image import APP_UID, SERVICE_PORT
from paved.proposals import propose_change
from paved.repo import TeamRepo

__all__ = [
    "BASE",
    "ENVIRONMENTS",
    "LIVENESS_PATH",
    "READINESS_PATH",
    "UNDEPLOYED",
    "EnvironmentStatus",
    "ImagePin",
    "Proposal",
    "deploy_branch",
    "deploy_status",
    "image_labels",
    "image_pins",
    "manifest_problems",
    "overlay_path",
    "pin_image",
    "propose",
    "show_deploy_status",
]

#: The environments every team repo deploys to, in promotion order.
ENVIRONMENTS = ("staging", "production")
BASE = "deploy/base"
#: The digest an overlay holds until a release is deployed there.
UNDEPLOYED = "sha256:" + "0" * 64
#: The paths the service answers for Kubernetes' probes (BentoML's own).
LIVENESS_PATH, READINESS_PATH = "/livez", "/readyz"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
#: Other kinds that run pods, held to the same hardening as the Deployment.
_WORKLOADS = {"Job", "CronJob", "StatefulSet", "DaemonSet", "Pod"}
#: An env variable named like a credential must not hold a literal value.
_CREDENTIAL_NAME = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|_KEY|CREDENTIALS?)$", re.IGNORECASE)
#: What an overlay's patch may not touch: the base's hardening is what runs.
_GUARDED = re.compile(
    r"securityContext|capabilities|readOnlyRootFilesystem|runAs(User|Group|NonRoot)|privileged"
    r"|allowPrivilegeEscalation|seccompProfile|hostPath|hostNetwork|hostPID|hostIPC"
)


@dataclass(frozen=True)
class ImagePin:
    """Which image an environment's overlay runs: the repository and its digest."""

    environment: str
    image: str
    digest: str

    @property
    def deployed(self) -> bool:
        """Whether a release was ever deployed here (the digest is not the all-zero one)."""
        return self.digest != UNDEPLOYED


def overlay_path(environment: str) -> str:
    """The path of an environment's kustomization in a team repo."""
    return f"deploy/overlays/{environment}/kustomization.yaml"


def image_pins(repo: TeamRepo) -> dict[str, ImagePin]:
    """The image each environment's overlay pins by digest (environments without one left out)."""
    pins = {}
    for environment in ENVIRONMENTS:
        overlay = _map(repo.manifests.get(overlay_path(environment)))
        for entry in map(_map, _list(overlay.get("images"))):
            digest, image = entry.get("digest"), entry.get("newName") or entry.get("name")
            if isinstance(digest, str) and isinstance(image, str):
                pins[environment] = ImagePin(environment, image, digest)
                break
    return pins


def pin_image(root: Path, environment: str, *, image: str, digest: str) -> ImagePin:
    """Point `environment`'s overlay at `image@digest`, in place; return the pin it replaced.

    Only the two values change (the file's comments and layout stay): what a deploy pull
    request shows is one line, or two when the image moved.
    """
    if not _DIGEST.match(digest):
        raise PavedError(f"{digest!r} is not a digest (sha256:<64 hex>)")
    repo = TeamRepo(root)
    old = image_pins(repo).get(environment)
    if old is None:
        raise PavedError(f"{overlay_path(environment)} pins no image by digest")
    path = root / overlay_path(environment)
    text = path.read_text(encoding="utf-8")
    text = re.sub(rf"(?m)^(\s*digest:\s*){re.escape(old.digest)}\s*$", rf"\g<1>{digest}", text)
    text = re.sub(rf"(?m)^(\s*newName:\s*){re.escape(old.image)}\s*$", rf"\g<1>{image}", text)
    path.write_text(text, encoding="utf-8")
    now = image_pins(TeamRepo(root)).get(environment)
    if now != ImagePin(environment, image, digest):
        raise PavedError(f"{overlay_path(environment)}: could not pin {image}@{digest}")
    return old


def deploy_branch(environment: str) -> str:
    """The one branch (and pull request) that moves `environment`."""
    return f"paved/deploy-{environment}"


@dataclass(frozen=True)
class Proposal:
    """A pull request that moves an environment to an image: what it changes, and where."""

    environment: str
    image: str
    digest: str
    previous: str  # the digest the environment runs now
    branch: str
    commit: str  # "" when the environment runs that digest already
    pull_request: str  # its URL; "" without GitHub (the branch was pushed, or kept)


def propose(
    project: Path,
    environment: str,
    *,
    digest: str | None = None,
    source: str | None = None,
    image: str | None = None,
    github: str | None = None,
    held: Held = AMBIENT,
) -> Proposal:
    """Open, or update, the one pull request that moves `environment` to an image.

    The image is `image@digest` (the image defaults to `[tool.paved] image`), or what
    `source` (another environment) runs: a promotion. A rollback is a proposal of an
    earlier digest. The change is one commit on `paved/deploy-<environment>`, made from the
    repo's current commit in a worktree of its own, without hooks; the branch is pushed to
    the repo's `origin` from a bare copy (never to the default branch), and with `github`
    (owner/name) its pull request is opened or updated. Nothing of the repo runs.
    """
    if environment not in ENVIRONMENTS:
        raise PavedError(f"{environment!r} is not an environment: {', '.join(ENVIRONMENTS)}")
    repo = TeamRepo(project)
    pins = image_pins(repo)
    if environment not in pins:
        raise PavedError(f"{overlay_path(environment)} pins no image by digest")
    if source is not None:
        if source not in pins or source == environment:
            raise PavedError(f"cannot promote from {source!r} to {environment!r}")
        if not pins[source].deployed:
            raise PavedError(f"{source} runs no release yet: nothing to promote")
        image, digest = image or pins[source].image, digest or pins[source].digest
    if not digest:
        raise PavedError(
            "name the digest to deploy (--digest sha256:...), or --from an environment"
        )
    image = image or str(repo.pyproject.get("tool", {}).get("paved", {}).get("image") or "")
    if not image:
        raise PavedError("no image: set [tool.paved] image in pyproject.toml, or pass --image")
    branch = deploy_branch(environment)
    previous = pins[environment].digest
    title = f"Deploy {environment}: {image.rsplit('/', 1)[-1]}@{digest[7:19]}"
    body = (
        f"Moves `{environment}` from `{previous}` to `{image}@{digest}`"
        + (f", the image `{source}` runs" if source else "")
        + ".\n\nMerging deploys it: the GitOps controller applies "
        f"`deploy/overlays/{environment}` from the default branch."
    )

    def edit(tree: Path) -> list[str]:
        pin_image(tree, environment, image=image, digest=digest)
        return [overlay_path(environment)]

    proposed = propose_change(
        project, branch=branch, title=title, body=body, edit=edit, github=github, held=held
    )
    return Proposal(
        environment,
        image,
        digest,
        previous,
        branch,
        proposed.commit,
        proposed.pull_request,
    )


@dataclass(frozen=True)
class EnvironmentStatus:
    """What one environment runs: the image, and what its labels and git say of it."""

    environment: str
    image: str
    digest: str
    release: str  # the image's version label ("" unknown)
    model_name: str  # the model it serves, from the image's labels ("" unknown)
    model_version: str
    promoted: str  # when the digest reached the overlay (its commit's date), "" never
    commit: str  # that commit
    note: str = ""  # why something is unknown

    def as_json(self) -> dict[str, str]:
        """The status as plain JSON values."""
        return dict(self.__dict__)


def deploy_status(project: Path, *, labels: bool = True) -> list[EnvironmentStatus]:
    """What each environment runs, and since when.

    The image and digest come from the overlay; when it was promoted from the commit that
    brought the digest into the overlay; the release and model from the image's labels
    (read with skopeo, unless `labels` is false).
    """
    pins = image_pins(TeamRepo(project))
    found = []
    for environment in ENVIRONMENTS:
        pin = pins.get(environment)
        if pin is None:
            found.append(EnvironmentStatus(environment, "", "", "", "", "", "", "", "no overlay"))
            continue
        if not pin.deployed:
            found.append(
                EnvironmentStatus(
                    environment, pin.image, pin.digest, "", "", "", "", "", "undeployed"
                )
            )
            continue
        log = git(
            project,
            "log",
            "-1",
            "--format=%H %cI",
            f"-S{pin.digest}",
            "--",
            overlay_path(environment),
            check=False,
        )
        commit, _, when = log.partition(" ")
        read: dict[str, str] = {}
        note = ""
        if labels:
            try:
                read = image_labels(f"{pin.image}@{pin.digest}")
            except PavedError as exc:
                note = str(exc)
        found.append(
            EnvironmentStatus(
                environment,
                pin.image,
                pin.digest,
                read.get("org.opencontainers.image.version", ""),
                read.get("dev.paved.model.name", ""),
                read.get("dev.paved.model.version", ""),
                when,
                commit[:12],
                note,
            )
        )
    return found


def image_labels(ref: str) -> dict[str, str]:
    """The labels of the image `ref` (image@digest), read from its registry with skopeo.

    The registry's login is skopeo's own (`paved ci login`, `skopeo login`);
    PAVED_REGISTRY_TLS_VERIFY=false reads a registry on plain HTTP.
    """
    if not shutil.which("skopeo"):
        raise PavedError("skopeo is not on PATH: the image's labels are unread")
    tls = os.environ.get("PAVED_REGISTRY_TLS_VERIFY", "true").lower() != "false"
    done = run(
        ["skopeo", "inspect", "--config", f"--tls-verify={str(tls).lower()}", f"docker://{ref}"],
        check=False,
        timeout=120,
    )
    if done.returncode:
        lines = done.stderr.strip().splitlines() or ["skopeo failed"]
        raise PavedError(f"cannot read {ref}: {lines[-1][-300:]}")
    try:
        config = json.loads(done.stdout).get("config") or {}
    except (ValueError, AttributeError) as exc:
        raise PavedError(f"cannot read {ref}: skopeo's answer is not an image config") from exc
    return {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}


def show_deploy_status(found: list[EnvironmentStatus], console: Console) -> None:
    """The deploy status as a table: one row per environment."""
    table = Table(title="deploy", title_justify="left")
    for column in ("environment", "digest", "release", "model", "promoted", "note"):
        table.add_column(column)
    for status in found:
        digest = status.digest[:19] if status.digest else ""
        model = f"{status.model_name} v{status.model_version}" if status.model_version else ""
        table.add_row(
            status.environment,
            escape(digest),
            escape(status.release),
            escape(model),
            escape(status.promoted),
            escape(status.note),
        )
    console.print(table)


def manifest_problems(repo: TeamRepo) -> list[str]:
    """Where `deploy/` breaks the standard, one line each ([] when it keeps it).

    A repo answered `deploy_target: none` (or made before the question) without `deploy/`
    has nothing to check.
    """
    try:
        target = repo.answers.get("deploy_target")
    except PavedError:
        target = None
    manifests = repo.manifests
    if not manifests:
        return [] if target != "kubernetes" else [f"no {BASE}: deploy_target is kubernetes"]
    problems = [
        f"{path} is unread: over the size bound, or not one YAML document"
        for path, data in manifests.items()
        if data is None
    ]
    documents = {path: _map(data) for path, data in manifests.items()}
    problems += [
        f"{path} is a Secret: no secret belongs in the repo"
        for path, data in documents.items()
        if data.get("kind") == "Secret"
    ]
    deployments = [
        (path, data)
        for path, data in documents.items()
        if path.startswith(f"{BASE}/") and data.get("kind") == "Deployment"
    ]
    if len(deployments) != 1:
        return [*problems, f"{BASE} holds {len(deployments)} Deployments, not one"]
    path, deployment = deployments[0]
    pod = _pod_spec(deployment)
    containers = [_map(container) for container in _list(pod.get("containers"))]
    if not containers:
        return [*problems, f"{path}: the Deployment has no container"]
    problems += _pod_problems(path, pod)
    for container in containers:
        problems += _container_problems(path, pod, container)
        problems += _service_problems(path, container)
    # Every other pod the base runs (the smoke test's Job) is hardened the same way.
    for other, data in documents.items():
        if other.startswith(f"{BASE}/") and data.get("kind") in _WORKLOADS:
            job = _pod_spec(data)
            problems += _pod_problems(other, job)
            for container in map(_map, _list(job.get("containers"))):
                problems += _container_problems(other, job, container)
    problems += _overlay_problems(repo, documents, str(containers[0].get("image", "")))
    return problems


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    """The pod a workload runs: a Pod's spec, a CronJob's job's template, else the template."""
    spec = _map(workload.get("spec"))
    if workload.get("kind") == "Pod":
        return spec
    if workload.get("kind") == "CronJob":
        spec = _map(_map(spec.get("jobTemplate")).get("spec"))
    return _map(_map(spec.get("template")).get("spec"))


def _pod_problems(path: str, pod: dict[str, Any]) -> list[str]:
    security = _map(pod.get("securityContext"))
    problems = []
    if _map(security.get("seccompProfile")).get("type") != "RuntimeDefault":
        problems.append(f"{path}: the pod's seccompProfile is not RuntimeDefault")
    if any(pod.get(key) for key in ("hostNetwork", "hostPID", "hostIPC")):
        problems.append(f"{path}: the pod shares a host namespace")
    if any("hostPath" in _map(volume) for volume in _list(pod.get("volumes"))):
        problems.append(f"{path}: the pod mounts a hostPath")
    return problems


def _container_problems(path: str, pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    name = f"{path}: container {container.get('name', '?')}"
    pod_security, security = (
        _map(pod.get("securityContext")),
        _map(container.get("securityContext")),
    )
    setting = {**pod_security, **security}  # the container's own settings win
    problems = []
    if setting.get("runAsNonRoot") is not True or setting.get("runAsUser") == 0:
        problems.append(
            f"{name} may run as root: set runAsNonRoot: true (the image's user is {APP_UID})"
        )
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{name}: the root filesystem is writable (readOnlyRootFilesystem: true)")
    if security.get("allowPrivilegeEscalation") is not False or security.get("privileged"):
        problems.append(f"{name} may gain privileges (allowPrivilegeEscalation: false)")
    if "ALL" not in _list(_map(security.get("capabilities")).get("drop")):
        problems.append(f"{name} keeps Linux capabilities (capabilities: drop: [ALL])")
    resources = _map(container.get("resources"))
    requests, limits = _map(resources.get("requests")), _map(resources.get("limits"))
    if not {"cpu", "memory"} <= requests.keys() or "memory" not in limits:
        problems.append(f"{name}: set requests (cpu, memory) and a memory limit")
    for variable in map(_map, _list(container.get("env"))):
        if _CREDENTIAL_NAME.search(str(variable.get("name", ""))) and "value" in variable:
            problems.append(
                f"{name}: {variable.get('name')} holds a literal value: "
                "use a secret the cluster holds"
            )
    return problems


def _service_problems(path: str, container: dict[str, Any]) -> list[str]:
    """The model service's port and probes, as the image serves them."""
    name = f"{path}: container {container.get('name', '?')}"
    problems = []
    ports = {
        _map(port).get("name"): _map(port).get("containerPort")
        for port in _list(container.get("ports"))
    }
    if SERVICE_PORT not in ports.values():
        problems.append(f"{name} does not declare the service's port {SERVICE_PORT}")
    for probe, want in (("livenessProbe", LIVENESS_PATH), ("readinessProbe", READINESS_PATH)):
        get = _map(_map(container.get(probe)).get("httpGet"))
        port = ports.get(get.get("port"), get.get("port"))
        if get.get("path") != want or port != SERVICE_PORT:
            problems.append(f"{name}: {probe} must get {want} on port {SERVICE_PORT}")
    return problems


def _overlay_problems(
    repo: TeamRepo, documents: dict[str, dict[str, Any]], base_image: str
) -> list[str]:
    problems = []
    try:
        declared = repo.pyproject.get("tool", {}).get("paved", {}).get("image")
    except PavedError:
        declared = None
    for environment in ENVIRONMENTS:
        path = overlay_path(environment)
        overlay = documents.get(path)
        if overlay is None:
            problems.append(f"no {path}")
            continue
        entries = [_map(entry) for entry in _list(overlay.get("images"))]
        entry = next((entry for entry in entries if entry.get("name") == base_image), None)
        if entry is None:
            problems.append(f"{path} does not pin the base's image {base_image!r}")
        elif "newTag" in entry or not _DIGEST.match(str(entry.get("digest", ""))):
            problems.append(f"{path}: the image is not pinned by digest (digest: sha256:...)")
        elif declared and entry.get("newName") != declared:
            problems.append(
                f"{path} runs {entry.get('newName')!r}, not the image pyproject.toml's "
                f"[tool.paved] image names ({declared!r})"
            )
        # Inline patches and patch files alike: any file of the overlay that names a
        # security setting would change what the base declares.
        folder = path.rsplit("/", 1)[0] + "/"
        for name, data in documents.items():
            if name.startswith(folder) and _GUARDED.search(repr(data)):
                problems.append(f"{name} touches the pod's security settings: the base's hold")
    return problems


def _map(data: Any) -> dict[Any, Any]:
    return data if isinstance(data, dict) else {}


def _list(data: Any) -> list[Any]:
    return data if isinstance(data, list) else []
