"""Workflow security over every answer set: zizmor, least privilege, pinned `uses:`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import MATRIX, RELEASE, Render, matrix_id
from paved._oidc import cloud_of
from snapshot import ROOT

pytestmark = pytest.mark.render

CLOUD = [
    {"container_registry": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml"},
    {"container_registry": "europe-docker.pkg.dev/acme/ml"},
    {"container_registry": "acme.azurecr.io/ml"},
    {"container_registry": "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/ml"},
]
#: Hosts that name a cloud registry somewhere but are not one: no OIDC for them.
DECOYS = [
    {"container_registry": "registry.example.com/acme.azurecr.io"},
    {"container_registry": "evil.example/123456789012.dkr.ecr.eu-west-1.amazonaws.com"},
    {"container_registry": "gcr.io.evil.example/ml"},
    {"container_registry": "acme.azurecr.io.evil.example/ml"},
    {"container_registry": "eu-docker.pkg.dev.evil.example/ml"},
]
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "zizmor"),
            "--offline",
            "--no-progress",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
    )


def workflows(repo: Path) -> dict[str, dict]:
    folder = repo / ".github" / "workflows"
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yml"))}


def uses_lines(path: Path) -> list[str]:
    return [
        line.split("uses:", 1)[1].strip()
        for line in path.read_text().splitlines()
        if "uses:" in line
    ]


def check_pins(path: Path) -> None:
    for line in uses_lines(path):
        ref, _, comment = line.partition(" # ")
        assert PINNED.match(ref), f"{path.name}: `uses: {line}` is not pinned to a full SHA"
        assert comment.strip(), f"{path.name}: `uses: {line}` names no release beside the SHA"


def check_no_event_in_run(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    for job in data["jobs"].values():
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), f"{path.name}: expression inside run: {step}"


@pytest.mark.parametrize("answers", MATRIX + CLOUD, ids=matrix_id)
def test_generated_workflows_are_least_privilege_and_pinned(
    render: Render, platform: tuple[Path, str], answers: dict[str, str]
) -> None:
    repo = render(**answers)
    _, sha = platform
    result = zizmor(repo)
    assert result.returncode == 0 and "No findings" in result.stdout + result.stderr, result.stdout

    flows = workflows(repo)
    assert set(flows) == {"ci.yml", "release.yml"}
    for name, flow in flows.items():
        assert flow["permissions"] == {}, f"{name}: top-level permissions must be empty"
        triggers = flow[True] if True in flow else flow["on"]  # YAML reads `on` as True
        assert not {"pull_request_target", "workflow_run"} & set(triggers)
        path = repo / ".github" / "workflows" / name
        check_pins(path)
        check_no_event_in_run(path)
        for job in flow["jobs"].values():
            assert job["uses"].endswith(f"@{sha}"), "the platform pin is the rendering commit"
        assert f"@{sha} # {RELEASE}" in path.read_text()

    ci, release = flows["ci.yml"]["jobs"]["ci"], flows["release.yml"]["jobs"]["release"]
    assert ci["permissions"] == {"contents": "read"}
    cloud = answers in CLOUD
    expected = {"contents": "read", "packages": "write", **({"id-token": "write"} if cloud else {})}
    assert release["permissions"] == expected
    assert "default_branch" in release["if"] and "refs/tags/" in release["if"]
    triggers = flows["release.yml"][True]
    assert set(triggers) == {"push"}
    own_registry = not cloud and not answers.get("container_registry", "ghcr.io").startswith(
        "ghcr.io"
    )
    assert ("secrets" in release) == own_registry
    assert ("registry-username" in release["with"]) == own_registry
    identity = {
        "aws": {"aws-role-arn"},
        "gcp": {"gcp-workload-identity-provider", "gcp-service-account"},
        "azure": {"azure-client-id", "azure-tenant-id"},
    }
    cloud_inputs = {name for names in identity.values() for name in names}
    found = cloud_of(answers.get("container_registry", "ghcr.io").split("/")[0])
    assert set(release["with"]) & cloud_inputs == identity.get(found or "", set())
    for name, job in (("team-ci.yml", ci), ("team-release.yml", release)):
        reusable = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())[True]
        assert set(job["with"]) <= set(reusable["workflow_call"]["inputs"]), name


def test_platform_workflows_are_least_privilege_and_pinned() -> None:
    result = zizmor(ROOT / ".github" / "workflows")
    assert result.returncode == 0 and "No findings" in result.stdout + result.stderr, result.stdout
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        flow = yaml.safe_load(path.read_text())
        check_pins(path)
        check_no_event_in_run(path)
        if path.name == "team-release.yml":
            # The calling job grants exactly what the push needs (tested on the generated
            # release.yml); a called job can only narrow that, so this one asks for nothing.
            assert "permissions" not in flow, path.name
            assert all("permissions" not in job for job in flow["jobs"].values()), path.name
            continue
        assert flow["permissions"] == {}, path.name
        for name, job in flow["jobs"].items():
            granted = job.get("permissions", {})
            writes = {scope for scope, level in granted.items() if level == "write"}
            assert writes == set(), f"{path.name}:{name} must not write"


@pytest.mark.parametrize("answers", CLOUD + DECOYS, ids=matrix_id)
def test_the_template_knows_a_cloud_registry_as_paved_ci_login_does(
    render: Render, answers: dict[str, str]
) -> None:
    """The template's cloud patterns are login's own: a decoy gets no OIDC token."""
    repo = render(**answers)
    release = workflows(repo)["release.yml"]["jobs"]["release"]
    cloud = cloud_of(answers["container_registry"].split("/")[0])
    assert (answers in CLOUD) == (cloud is not None)
    assert ("id-token" in release["permissions"]) == (cloud is not None)
    inputs = {name for name in release["with"] if name.startswith(("aws-", "gcp-", "azure-"))}
    assert bool(inputs) == (cloud is not None)
    assert all(name.startswith(f"{cloud}-") for name in inputs)


def test_the_template_cloud_patterns_are_generated_from_paved() -> None:
    from template_constants import TARGETS

    for target, make in TARGETS.items():
        assert target.read_text(encoding="utf-8") == make(), (
            "run: uv run python ci/template_constants.py"
        )
