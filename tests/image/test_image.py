"""Image tier: `paved ci verify`, then the service image built with buildah from the bento,
pushed to a local registry, pulled back by digest and run: 200 and 400 from the container.
"""

from __future__ import annotations

import copy
import json
import re
import struct
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from paved._errors import PavedError
from paved.ci.image import choose_builder
from paved.deploy import overlay_path, pin_image

from ci.base_image import DISTROLESS_IMAGE, ensure_base_image
from ci.golden_path import DEMO_ANSWERS, IRIS_ROW, Service, generate, run, serve_image, tool_env
from ci.oci_registry import Registry, local_registry
from ci.pod import PodRefused, run_job, run_pod
from tests.lib.helpers import RELEASE, commit_all

pytestmark = [pytest.mark.image, pytest.mark.usefixtures("foreign_ci_context")]

SECRET_NAMES = re.compile(
    r"(^|/)(\.env|\.netrc|\.pypirc|\.git-credentials|id_rsa|id_ed25519|id_ecdsa|"
    r"credentials(\.json)?|auth\.json|config\.json|\.dockercfg|[^/]+\.key)$|(^|/)\.git/"
)
# A whole PEM private key (marker, base64 body, end marker), not code that names the marker.
PRIVATE_KEY = re.compile(
    rb"-----BEGIN (RSA |EC |OPENSSH |DSA |ENCRYPTED )?PRIVATE KEY-----\r?\n"
    rb"[A-Za-z0-9+/=\r\n:,-]{64,}-----END"
)


@pytest.fixture(scope="module")
def team(
    platform: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    clone, _ = platform
    work = tmp_path_factory.mktemp("image")
    env = tool_env(clone)
    repo = generate(
        work / "iris-demo", env, {**DEMO_ANSWERS, "dvc_remote_url": str(work / "remote")}
    )
    run(["uv", "sync", "--frozen"], repo, env)
    return repo, env


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    with local_registry() as running:
        yield running


def test_paved_ci_verify_runs_every_step(team: tuple[Path, dict[str, str]]) -> None:
    repo, env = team
    out = run(["uv", "run", "--frozen", "paved", "ci", "verify"], repo, env).stderr
    for check in ("standard", "lint", "format", "types", "tests", "pipeline", "bento"):
        assert re.search(rf"^ok {check} \(", out, re.MULTILINE), out
    assert (repo / "models/champion/MLmodel").is_file()


def test_paved_ci_verify_fails_on_a_lint_error(team: tuple[Path, dict[str, str]]) -> None:
    repo, env = team
    bad = repo / "src" / "iris_demo" / "bad.py"
    bad.write_text("import os\n")
    try:
        with pytest.raises(RuntimeError, match=r"FAILED lint"):
            run(["uv", "run", "--frozen", "paved", "ci", "verify", "--only", "lint"], repo, env)
    finally:
        bad.unlink()


def paved_ci_image(
    repo: Path, env: dict[str, str], registry: str, *options: str
) -> tuple[str, str, list[str]]:
    """`paved ci image --push` to `registry`: the image, its digest and every ref built."""
    command = ["uv", "run", "--frozen", "paved", "ci", "image", "--registry", registry, "--push"]
    out = run([*command, *options], repo, env).stdout
    match = re.search(r"^pushed (\S+)@(sha256:[0-9a-f]{64})$", out, re.MULTILINE)
    assert match, out
    return match[1], match[2], re.findall(r"^built (\S+)$", out, re.MULTILINE)


@pytest.fixture(scope="module")
def pushed(team: tuple[Path, dict[str, str]], registry: Registry) -> Iterator[tuple[str, str]]:
    """(image, digest) of the image built from the team repo and pushed to the registry."""
    repo, env = team
    base = ensure_base_image(DISTROLESS_IMAGE)
    # A push labels the image with the commit: commit the trained repo.
    commit_all(repo, env, "Champion trained", allow_empty=True)
    image, digest, refs = paved_ci_image(
        repo,
        env,
        f"{registry.host}/acme",
        "--base-image",
        base,
        "--no-tls-verify",
        "--builder",
        "buildah",
    )
    yield image, digest
    subprocess.run(["buildah", "rmi", "--force", *refs], capture_output=True)


def test_a_push_refuses_a_tree_with_uncommitted_changes(
    team: tuple[Path, dict[str, str]], registry: Registry
) -> None:
    repo, env = team
    commit_all(repo, env, "Champion trained", allow_empty=True)
    note = repo / "notes.txt"
    note.write_text("not committed\n")
    try:
        with pytest.raises(
            RuntimeError, match=r"uncommitted changes \(notes.txt\): commit them first"
        ):
            paved_ci_image(repo, env, f"{registry.host}/acme", "--builder", "buildah")
    finally:
        note.unlink()


def skopeo(*args: str) -> dict:
    done = subprocess.run(["skopeo", *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_image_is_tagged_labelled_and_non_root(
    team: tuple[Path, dict[str, str]], registry: Registry, pushed: tuple[str, str]
) -> None:
    repo, _ = team
    image, digest = pushed
    sha = run(["git", "rev-parse", "HEAD"], repo, {}).stdout.strip()
    tags = skopeo("list-tags", "--tls-verify=false", f"docker://{image}")["Tags"]
    assert sorted(tags) == sorted([sha, "latest"])
    config = skopeo("inspect", "--config", "--tls-verify=false", f"docker://{image}@{digest}")[
        "config"
    ]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"][:4] == ["python3", "-m", "bentoml", "serve"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.revision"] == sha
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["dev.paved.platform.version"] == RELEASE
    # The model it serves, for deploys and `paved deploy status`.
    assert labels["dev.paved.model.name"] == "iris-demo"
    assert labels["dev.paved.model.version"] == "1"
    assert labels["org.opencontainers.image.title"] == "iris-demo"
    assert "org.opencontainers.image.source" in labels


@pytest.fixture(scope="module")
def layers(pushed: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The pushed image's layer archives, pulled back from the registry by digest."""
    image, digest = pushed
    folder = tmp_path_factory.mktemp("layers")
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", f"docker://{image}@{digest}", f"dir:{folder}"],
        check=True,
        capture_output=True,
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    return [folder / layer["digest"].split(":")[1] for layer in manifest["layers"]]


def test_no_layer_holds_a_secret(layers: list[Path]) -> None:
    offenders = []
    for layer in layers:
        with tarfile.open(layer) as archive:
            for member in archive:
                if SECRET_NAMES.search(member.name):
                    offenders.append(member.name)
                elif member.isfile() and member.size < 1_000_000:
                    data = archive.extractfile(member)
                    if data is not None and PRIVATE_KEY.search(data.read()):
                        offenders.append(member.name)
    assert offenders == []


def test_the_image_holds_no_shell_or_package_manager(layers: list[Path]) -> None:
    """Built on the distroless Python (decision 0023): Python, and nothing to run a script."""
    tools = {"sh", "bash", "dash", "busybox", "apt", "apt-get", "dpkg", "pip", "pip3"}
    found, pythons = [], []
    for layer in layers:
        with tarfile.open(layer) as archive:
            for member in archive:
                folder, _, name = member.name.removeprefix("./").rpartition("/")
                if folder in {"bin", "usr/bin", "sbin", "usr/sbin"} and name in tools:
                    found.append(member.name)
                if folder == "usr/bin" and name.startswith("python3"):
                    pythons.append(name)
    assert found == []
    assert "python3" in pythons and "python3.11" in pythons


def elf_sections(data: bytes) -> set[str]:
    """The section names of a 64-bit little-endian ELF file."""
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(index: int) -> tuple[int, int, int]:
        (name,) = struct.unpack_from("<I", data, shoff + index * shentsize)
        offset, size = struct.unpack_from("<QQ", data, shoff + index * shentsize + 0x18)
        return name, offset, size

    _, names_at, _ = header(shstrndx)
    return {
        data[names_at + name : data.index(b"\0", names_at + name)].decode()
        for name, _, _ in map(header, range(shnum))
    }


def test_extension_modules_ship_without_symbol_tables(layers: list[Path]) -> None:
    """`paved ci image` strips the extension modules, not the libraries auditwheel vendored."""
    stripped, vendored = {}, {}
    for layer in layers:
        with tarfile.open(layer) as archive:
            for member in archive:
                name = member.name
                if member.isfile() and name.startswith("opt/paved/site/") and ".so" in name:
                    data = archive.extractfile(member)
                    assert data is not None
                    held = "symtab" if ".symtab" in elf_sections(data.read()) else "none"
                    is_vendored = name.split("/")[-2].endswith(".libs")
                    (vendored if is_vendored else stripped)[name] = held
    numpy_core = [n for n in stripped if "numpy/_core/_multiarray_umath" in n]
    assert numpy_core and len(stripped) > 100
    assert {held for held in stripped.values()} == {"none"}, [
        name for name, held in stripped.items() if held != "none"
    ]
    assert any("numpy.libs/" in name for name in vendored)
    assert "symtab" in vendored.values()  # left as the wheel shipped it


@pytest.fixture(scope="module")
def container_service(
    team: tuple[Path, dict[str, str]], pushed: tuple[str, str]
) -> Iterator[Service]:
    """The pulled image's own entrypoint, run with buildah (host network, loopback port)."""
    repo, env = team
    image, digest = pushed
    with serve_image(f"{image}@{digest}", repo, env) as service:
        yield service


def test_container_serves_the_champion(container_service: Service) -> None:
    status, body = container_service.post("/predict", {"rows": [IRIS_ROW]})
    assert status == 200
    assert body["predictions"] == ["virginica"] and body["model_name"] == "iris-demo"
    status, body = container_service.post(
        "/predict", {"rows": [{**IRIS_ROW, "sepal_width_cm": "x"}]}
    )
    assert status == 400 and ["rows", 0, "sepal_width_cm"] in [e["loc"] for e in body["detail"]]
    assert container_service.get("/livez") == 200


@pytest.fixture(scope="module")
def manifests(team: tuple[Path, dict[str, str]], pushed: tuple[str, str]) -> dict[str, Any]:
    """The production overlay, pinned to the pushed image as a deploy pull request pins it,
    rendered by kubectl: each resource by kind."""
    repo, env = team
    image, digest = pushed
    overlay = repo / overlay_path("production")
    original = overlay.read_text()
    try:
        pin_image(repo, "production", image=image, digest=digest)
        rendered = run(["kubectl", "kustomize", "deploy/overlays/production"], repo, env).stdout
    finally:
        overlay.write_text(original)
    return {doc["kind"]: doc for doc in yaml.safe_load_all(rendered) if doc}


@pytest.fixture(scope="module")
def production(manifests: dict[str, Any]) -> dict[str, Any]:
    return dict(manifests["Deployment"])


def test_the_image_runs_as_the_production_deployment_says(
    team: tuple[Path, dict[str, str]], production: dict[str, Any]
) -> None:
    """Command, env, port, user, read-only root and mounts all come from the manifest.

    A manifest that drifts from the image fails: a port or a probe path the service does not
    serve (checked against the running container: the image listens where it listens, so
    those two edits change only where the kubelet would look), a user the kubelet refuses, a
    writable mount the service needs taken away.
    """
    _, env = team
    container = production["spec"]["template"]["spec"]["containers"][0]
    with run_pod(production, env=env) as pod:
        assert pod.probe_failures(pod.spec) == []
        status, body = pod.post("/predict", {"rows": [IRIS_ROW]})
        assert status == 200 and body["predictions"] == ["virginica"], body
        assert pod.service_uid() == container["securityContext"]["runAsUser"]
        assert pod.spec.read_only and "/tmp" in pod.spec.tmpfs

        wrong_port = copy.deepcopy(production)
        wrong_port["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 8080
        assert pod.probe_failures(pod.spec_of(wrong_port)) == [
            f"{kind} GET {path} on port 8080: refused"
            for kind, path in (
                ("startupProbe", "/livez"),
                ("livenessProbe", "/livez"),
                ("readinessProbe", "/readyz"),
            )
        ]
        wrong_path = copy.deepcopy(production)
        probe = wrong_path["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
        probe["httpGet"]["path"] = "/health"
        assert pod.probe_failures(pod.spec_of(wrong_path)) == [
            "readinessProbe GET /health on port 3000: 404"
        ]

    root = copy.deepcopy(production)
    root["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0
    refused = pytest.raises(PodRefused, match="runAsNonRoot and image will run as root")
    with refused, run_pod(root, env=env):
        pass
    no_tmp = copy.deepcopy(production)
    mounts = no_tmp["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    mounts[:] = [mount for mount in mounts if mount["mountPath"] != "/tmp"]
    with pytest.raises(RuntimeError, match="Read-only file system"), run_pod(no_tmp, env=env):
        pass


def test_the_smoke_job_passes_beside_the_service_and_fails_without_it(
    team: tuple[Path, dict[str, str]], manifests: dict[str, Any]
) -> None:
    """The PostSync Job, run as it says (command, workdir, user, read-only root), against
    the production pod through the Service's name: `paved-ml smoke` passes, reading the
    budget from the image's params.yaml. Where the name leads nowhere it fails (a failed
    Job, so a failed sync)."""
    _, env = team
    service = manifests["Service"]
    name, job = service["metadata"]["name"], manifests["Job"]
    with run_pod(manifests["Deployment"], env=env) as pod:
        code, log = run_job(job, env=env, beside=pod, services=[service])
        assert code == 0, log
        assert "ok  answer: 200, 3 predictions from iris-demo v1" in log
        assert re.search(r"ok  p99: [0-9.]+ ms over 100 requests, within the 250 ms budget", log)
        assert f"smoke passed: http://{name}" in log

        code, log = run_job(job, env=env, beside=pod, services=[])
        assert code == 1, log
        assert f"FAILED  answer: no answer from http://{name}" in log


def test_an_xgboost_repo_builds_an_image_that_serves_labels(
    platform: tuple[Path, str], registry: Registry, tmp_path: Path
) -> None:
    """The second framework ships too: its own repo, trained, built, pushed, pulled, run."""
    clone, _ = platform
    env = tool_env(clone)
    answers = {
        **DEMO_ANSWERS,
        "model_framework": "xgboost",
        "dvc_remote_url": str(tmp_path / "remote"),
    }
    repo = generate(tmp_path / "iris-demo", env, answers)
    run(["uv", "sync", "--frozen"], repo, env)
    checks = ["--only", "pipeline", "--only", "bento"]
    run(["uv", "run", "--frozen", "paved", "ci", "verify", *checks], repo, env)
    commit_all(repo, env, "Champion trained", allow_empty=True)
    image, digest, refs = paved_ci_image(
        repo, env, f"{registry.host}/acme", "--base-image", ensure_base_image(DISTROLESS_IMAGE),
        "--no-tls-verify", "--builder", "buildah",
    )  # fmt: skip
    try:
        with serve_image(f"{image}@{digest}", repo, env) as service:
            status, body = service.post("/predict", {"rows": [IRIS_ROW]})
            assert status == 200, body
            assert body["predictions"][0] in {"setosa", "versicolor", "virginica"}
            assert set(body["probabilities"][0]) == {"setosa", "versicolor", "virginica"}
    finally:
        subprocess.run(["buildah", "rmi", "--force", *refs], capture_output=True)


def _docker_buildx() -> bool:
    try:
        return choose_builder() == "buildx"
    except PavedError:
        return False


@pytest.mark.skipif(
    not _docker_buildx(), reason="no docker daemon with buildx on this host (GitHub's runners)"
)
def test_buildx_builds_the_same_image_where_a_daemon_exists(
    team: tuple[Path, dict[str, str]], registry: Registry
) -> None:
    repo, env = team
    python = (repo / ".python-version").read_text().strip()
    image, digest, _ = paved_ci_image(
        repo, env, f"{registry.host}/buildx", "--base-image", f"python:{python}-slim"
    )
    config = skopeo("inspect", "--config", "--tls-verify=false", f"docker://{image}@{digest}")
    assert config["config"]["User"] == "10001:10001"
    assert config["config"]["Entrypoint"][:4] == ["python3", "-m", "bentoml", "serve"]
    assert config["config"]["Labels"]["org.opencontainers.image.title"] == "iris-demo"
