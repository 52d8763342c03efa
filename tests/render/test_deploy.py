"""Deploy manifests: each overlay renders, validates, passes the policy scanner and PV012.

The tools are the real ones: Debian's `kubectl kustomize`, `kubernetes-validate` against the
schema of a pinned Kubernetes version, and checkov's Kubernetes checks. PV012 (`paved check`)
reads the same files without them and must fail on each way a manifest can break.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from copier import run_copy
from paved.checks import check_repo
from paved.deploy import ENVIRONMENTS, UNDEPLOYED, image_pins
from paved.repo import TeamRepo

from ci.golden_path import DEMO_ANSWERS
from ci.snapshot import PLATFORM_URL, ROOT
from tests.lib.helpers import Render

pytestmark = pytest.mark.render

#: The Kubernetes version the manifests are validated against (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.32"
#: checkov pins packaging < 24, which the workspace cannot: uvx runs it in its own environment.
CHECKOV = "checkov==3.3.30"
TOOLS = Path(sys.executable).parent


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, platform: tuple[Path, str]) -> Path:
    dest = tmp_path_factory.mktemp("deploy") / "iris-demo"
    run_copy(PLATFORM_URL, dest, data=DEMO_ANSWERS, defaults=True, quiet=True, unsafe=False)
    return dest


def kustomize(overlay: Path) -> list[dict[str, object]]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_overlay_renders_and_validates_against_the_pinned_schema(
    rendered: Path, environment: str, tmp_path: Path
) -> None:
    documents = kustomize(rendered / "deploy" / "overlays" / environment)
    kinds = {str(doc["kind"]): doc for doc in documents}
    assert set(kinds) == {
        *("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"),
        *("NetworkPolicy", "Job"),
    }
    # The smoke test runs after each sync, from the same image, against the Service.
    job = kinds["Job"]
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PostSync"  # type: ignore[index]
    (smoke,) = job["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    assert smoke["image"] == f"ghcr.io/acme/iris-demo@{UNDEPLOYED}"
    assert smoke["command"][3:5] == ["smoke", "http://iris-demo"]
    assert {doc["metadata"]["namespace"] for doc in documents} == {f"iris-demo-{environment}"}  # type: ignore[index]
    pod = kinds["Deployment"]["spec"]["template"]["spec"]  # type: ignore[index]
    (container,) = pod["containers"]
    assert container["image"] == f"ghcr.io/acme/iris-demo@{UNDEPLOYED}"
    smoke_labels = job["spec"]["template"]["metadata"]["labels"]  # type: ignore[index]
    # The PDB and the Service select the Deployment's pods, not the Job's; the NetworkPolicy
    # selects both (and admits traffic only to the named port the service has).
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]  # type: ignore[index]
    policy = kinds["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"]  # type: ignore[index]
    assert policy.items() <= labels.items() and policy.items() <= smoke_labels.items()
    for kind in ("Service", "PodDisruptionBudget"):
        spec = kinds[kind]["spec"]  # type: ignore[index]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        assert selector and selector.items() <= labels.items(), kind
        assert not selector.items() <= smoke_labels.items(), kind

    output = tmp_path / f"{environment}.yaml"
    output.write_text(yaml.safe_dump_all(documents))
    done = subprocess.run(
        [str(TOOLS / "kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("INFO") == len(documents), done.stdout


def test_the_schema_validation_refuses_a_broken_manifest(rendered: Path, tmp_path: Path) -> None:
    documents = kustomize(rendered / "deploy" / "overlays" / "staging")
    deployment = next(doc for doc in documents if doc["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"  # type: ignore[index]
    output = tmp_path / "broken.yaml"
    output.write_text(yaml.safe_dump_all(documents))
    done = subprocess.run(
        [str(TOOLS / "kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "containerPort" in done.stdout + done.stderr


def test_both_overlays_pass_checkovs_kubernetes_checks(rendered: Path, tmp_path: Path) -> None:
    for environment in ENVIRONMENTS:
        documents = kustomize(rendered / "deploy" / "overlays" / environment)
        (tmp_path / f"{environment}.yaml").write_text(yaml.safe_dump_all(documents))
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    scan = ["-d", str(tmp_path), "--framework", "kubernetes", "--output", "json"]
    done = subprocess.run(
        ["uvx", "--from", CHECKOV, "checkov", *scan],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=600,
    )
    report = json.loads(done.stdout)
    results = report["results"]
    failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
    assert failed == [], failed
    assert results["passed_checks"], "checkov checked nothing"
    skipped = results["skipped_checks"]
    reasons = [c["check_result"].get("suppress_comment", "").strip() for c in skipped]
    assert skipped and all(reasons), skipped
    # The image is pinned by digest in what a cluster gets: no skip needed for that.
    assert "CKV_K8S_43" in {c["check_id"] for c in results["passed_checks"]}
    # Every skip is written in the base, with its reason, and recorded in the decision.
    decision = (ROOT / "docs" / "decisions" / "0029-deploy-by-pull-request.md").read_text()
    for check in {c["check_id"] for c in skipped}:
        assert f"`{check}`" in decision, check


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, count))


BASE = Path("deploy/base/deployment.yaml")
STAGING = Path("deploy/overlays/staging/kustomization.yaml")

#: Ways a manifest breaks the standard, and what PV012 must say of each.
BREAKS: dict[str, tuple[Callable[[Path], None], str]] = {
    "a tag": (
        lambda repo: _edit(repo / STAGING, f"digest: {UNDEPLOYED}", "newTag: latest"),
        "not pinned by digest",
    ),
    "a probe path": (
        lambda repo: _edit(repo / BASE, "path: /readyz", "path: /health"),
        "readinessProbe must get /readyz",
    ),
    "a port": (
        lambda repo: _edit(repo / BASE, "containerPort: 3000", "containerPort: 8080"),
        "does not declare the service's port 3000",
    ),
    "root": (
        lambda repo: _edit(repo / BASE, "runAsNonRoot: true", "runAsNonRoot: false", count=-1),
        "may run as root",
    ),
    "capabilities": (
        lambda repo: _edit(repo / BASE, "drop: [ALL]", "drop: [NET_RAW]"),
        "keeps Linux capabilities",
    ),
    "seccomp": (
        lambda repo: _edit(repo / BASE, "type: RuntimeDefault", "type: Unconfined"),
        "seccompProfile is not RuntimeDefault",
    ),
    "an overlay's patch": (
        lambda repo: _edit(
            repo / STAGING,
            "patches:\n",
            "patches:\n  - patch: |-\n      - op: replace\n        path: /spec/template/spec/"
            "containers/0/securityContext/readOnlyRootFilesystem\n        value: false\n"
            "    target:\n      kind: Deployment\n",
        ),
        "touches the pod's security settings",
    ),
    "another image": (
        lambda repo: _edit(repo / STAGING, "newName: ghcr.io/acme/iris-demo", "newName: evil.io/x"),
        "not the image pyproject.toml's [tool.paved] image names",
    ),
    "a secret": (
        lambda repo: (repo / "deploy/base/secret.yaml").write_text(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: x\n"
        ),
        "deploy/base/secret.yaml is a Secret",
    ),
    "a literal credential": (
        lambda repo: _edit(
            repo / BASE,
            "          env:\n",
            "          env:\n            - name: DB_PASSWORD\n              value: hunter2\n",
        ),
        "DB_PASSWORD holds a literal value",
    ),
    "the smoke job as root": (
        lambda repo: _edit(
            repo / "deploy/base/smoke-job.yaml", "runAsNonRoot: true", "runAsNonRoot: false", -1
        ),
        "deploy/base/smoke-job.yaml: container smoke may run as root",
    ),
    "an alias bomb": (
        lambda repo: (repo / BASE).write_text("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"),
        "deploy/base/deployment.yaml is unread",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_pv012_names_each_way_a_manifest_breaks(rendered: Path, tmp_path: Path, case: str) -> None:
    repo = tmp_path / "iris-demo"
    shutil.copytree(rendered, repo)
    assert _pv012(repo) == (True, "")
    edit, message = BREAKS[case]
    edit(repo)
    result, said = _pv012(repo)
    assert result is False and message in said, said


def test_an_overlay_without_a_release_reads_as_undeployed(rendered: Path) -> None:
    pins = image_pins(TeamRepo(rendered))
    assert set(pins) == set(ENVIRONMENTS)
    assert all(pin.image == "ghcr.io/acme/iris-demo" and not pin.deployed for pin in pins.values())


def test_deploy_target_none_renders_no_manifests_and_needs_none(render: Render) -> None:
    repo = render(deploy_target="none")
    assert not (repo / "deploy").exists()
    assert _pv012(repo) == (True, "")
    # A repo whose answers say kubernetes must have the manifests.
    answers = repo / ".copier-answers.yml"
    _edit(answers, "deploy_target: none", "deploy_target: kubernetes")
    result, said = _pv012(repo)
    assert result is False and "no deploy/base" in said


def _pv012(repo: Path) -> tuple[bool | None, str]:
    report = check_repo(repo, select=frozenset({"PV012"}))
    (found,) = [result for result in report.results if result.name == "PV012"]
    return found.result, found.err_msg
