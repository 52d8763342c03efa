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

import re
from dataclasses import dataclass
from typing import Any

from paved._errors import PavedError
from paved.ci.image import APP_UID, SERVICE_PORT
from paved.repo import TeamRepo

__all__ = [
    "BASE",
    "ENVIRONMENTS",
    "LIVENESS_PATH",
    "READINESS_PATH",
    "UNDEPLOYED",
    "ImagePin",
    "image_pins",
    "manifest_problems",
]

#: The environments every team repo deploys to, in promotion order.
ENVIRONMENTS = ("staging", "production")
BASE = "deploy/base"
#: The digest an overlay holds until a release is deployed there.
UNDEPLOYED = "sha256:" + "0" * 64
#: The paths the service answers for Kubernetes' probes (BentoML's own).
LIVENESS_PATH, READINESS_PATH = "/livez", "/readyz"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
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
    pod = _map(_map(_map(deployment.get("spec")).get("template")).get("spec"))
    containers = [_map(container) for container in _list(pod.get("containers"))]
    if not containers:
        return [*problems, f"{path}: the Deployment has no container"]
    problems += _pod_problems(path, pod)
    for container in containers:
        problems += _container_problems(path, pod, container)
    problems += _overlay_problems(repo, documents, str(containers[0].get("image", "")))
    return problems


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
