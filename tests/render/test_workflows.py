"""Workflow security over every answer set: zizmor, least privilege, pinned `uses:`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from paved.checks.rules import PV004, PV005, paved_workflows
from paved.ci.clouds import cloud_of
from paved.repo import TeamRepo

from ci.snapshot import ROOT
from tests.lib.helpers import MATRIX, RELEASE, Render, matrix_id

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
    deploys = answers.get("deploy_target", "kubernetes") == "kubernetes"
    deploy_flows = {"promote.yml", "deployed.yml"} if deploys else set()
    assert set(flows) == {"ci.yml", "drift.yml", "release.yml", "retrain.yml"} | deploy_flows
    # The Paved standard's own rules: every `uses:` pinned by SHA with its release, empty
    # top-level permissions, write scopes only where allowed, no dangerous triggers.
    assert PV004.check(TeamRepo(repo)) is True
    assert PV005.check(paved_workflows(TeamRepo(repo))) is True
    for name, flow in flows.items():
        path = repo / ".github" / "workflows" / name
        check_no_event_in_run(path)
        for job in flow["jobs"].values():
            assert job["uses"].endswith(f"@{sha}"), "the platform pin is the rendering commit"
        assert f"@{sha} # {RELEASE}" in path.read_text()

    ci, release = flows["ci.yml"]["jobs"]["ci"], flows["release.yml"]["jobs"]["release"]
    assert ci["permissions"] == {"contents": "read"}
    drift = flows["drift.yml"]["jobs"]["drift"]
    data_cloud = answers.get("dvc_remote")
    # The jobs that run the repo's code read, and hold the job's OIDC token only where the
    # data is on a cloud (team-drift.yml's and team-retrain.yml's jobs inherit exactly
    # this): `paved ci storage-login` turns it into session keys, a token or a SAS.
    token = data_cloud in {"s3", "gs", "azure"}
    reader = {"contents": "read", **({"id-token": "write"} if token else {})}
    assert drift["permissions"] == reader
    assert ("aws-role-arn" in drift["with"]) == (data_cloud == "s3")
    assert ("gcp-workload-identity-provider" in drift["with"]) == (data_cloud == "gs")
    assert ("azure-client-id" in drift["with"]) == (data_cloud == "azure")
    if data_cloud == "azure":  # the DVC remote's container, unless the team names another
        stored = yaml.safe_load((repo / ".copier-answers.yml").read_text())
        container = re.fullmatch(r"azure://([^/]+)/.*", stored["dvc_remote_url"])
        assert container, stored["dvc_remote_url"]
        expected_container = f"${{{{ vars.PAVED_AZURE_CONTAINER || '{container[1]}' }}}}"
        assert drift["with"]["azure-container"] == expected_container
    alert = flows["drift.yml"]["jobs"]["alert"]
    assert alert["permissions"] == {"contents": "read", "issues": "write"}
    assert alert["needs"] == "drift" and "if" not in alert  # the drift job ends green
    assert alert["with"]["state"] == "${{ needs.drift.outputs.state }}"
    assert set(flows["drift.yml"][True]) == {"schedule", "workflow_dispatch"}
    cloud = answers in CLOUD
    ghcr = answers.get("container_registry", "ghcr.io").startswith("ghcr.io")
    expected = {
        "contents": "read",
        **({"packages": "write"} if ghcr else {}),
        **({"id-token": "write"} if cloud else {}),
    }
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
    called = [
        ("team-ci.yml", ci),
        ("team-release.yml", release),
        ("team-drift.yml", drift),
        ("team-alert.yml", alert),
    ]
    # Retraining: on its schedule and by hand, and (opted in) after a failed monitoring run.
    # The retrain job reads; the propose job, which runs none of the repo's code, writes a
    # branch and a pull request.
    retrain, propose = (flows["retrain.yml"]["jobs"][name] for name in ("retrain", "propose"))
    schedule = answers.get("retrain_schedule", "0 5 * * 1")
    assert flows["retrain.yml"][True] == {
        "schedule": [{"cron": schedule}],
        "workflow_dispatch": None,
    }
    assert retrain["permissions"] == reader
    assert propose["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert propose["needs"] == "retrain" and "promoted == 'true'" in propose["if"]
    called += [("team-retrain.yml", retrain), ("team-retrain-propose.yml", propose)]
    on_drift = {k: v for k, v in flows["drift.yml"]["jobs"].items() if k in {"retrain", "propose"}}
    assert bool(on_drift) == (answers.get("retrain_on_drift") is True)
    if on_drift:
        assert on_drift["retrain"]["needs"] == "drift"
        assert on_drift["retrain"]["if"] == "${{ needs.drift.outputs.state == 'failed' }}"
        assert on_drift["propose"] == propose
        assert on_drift["retrain"]["permissions"] == reader
    assert ("deploy" in flows["release.yml"]["jobs"]) == deploys
    if deploys:
        # After a release from the default branch, a pull request moves staging to it; only
        # a promotion, in the production environment, moves production.
        deploy = flows["release.yml"]["jobs"]["deploy"]
        assert deploy["needs"] == "release" and "default_branch" in deploy["if"]
        assert "vars.PAVED_DEPLOY_STAGING != 'false'" in deploy["if"]  # a freeze pauses it
        assert deploy["with"]["environment"] == "staging"
        assert deploy["permissions"] == {"contents": "write", "pull-requests": "write"}
        promote = flows["promote.yml"]["jobs"]["promote"]
        assert set(flows["promote.yml"][True]) == {"workflow_dispatch"}
        assert promote["with"]["environment"] == "production"
        record = flows["deployed.yml"]["jobs"]["record"]
        assert record["permissions"] == {"contents": "read", "packages": "read"}
        assert flows["deployed.yml"][True]["push"]["paths"] == ["deploy/overlays/**"]
        called += [
            ("team-deploy.yml", deploy),
            ("team-deploy.yml", promote),
            ("team-deployed.yml", record),
        ]
    for name, job in called:
        reusable = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())[True]
        assert set(job["with"]) <= set(reusable["workflow_call"]["inputs"]), name


def test_platform_workflows_are_least_privilege_and_pinned() -> None:
    result = zizmor(ROOT / ".github" / "workflows")
    assert result.returncode == 0 and "No findings" in result.stdout + result.stderr, result.stdout
    assert PV004.check(TeamRepo(ROOT)) is True  # the platform keeps its own pinning rule
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        flow = yaml.safe_load(path.read_text())
        check_no_event_in_run(path)
        if path.name == "team-release.yml":
            # The calling job grants exactly what the push needs (tested on the generated
            # release.yml); the build job narrows it to reading, the push job asks for
            # nothing of its own (a request the caller does not grant would stop the run).
            assert "permissions" not in flow, path.name
            assert flow["jobs"]["build"]["permissions"] == {"contents": "read"}
            assert "permissions" not in flow["jobs"]["push"]
            continue
        assert flow["permissions"] == {}, path.name
        for name, job in flow["jobs"].items():
            granted = job.get("permissions", {})
            writes = {scope for scope, level in granted.items() if level == "write"}
            if (path.name, name) == ("team-deploy.yml", "propose"):
                # A branch and a pull request, in the GitHub environment being deployed:
                # production's required reviewers hold the job (its steps run no repo code:
                # test_no_job_that_can_write_runs_the_repos_code).
                assert granted == {"contents": "write", "pull-requests": "write"}
                assert job["environment"] == "${{ inputs.environment }}"
                continue
            if (path.name, name) == ("team-retrain-propose.yml", "propose"):
                # The retraining pull request, from the retrain job's patch: it runs no repo
                # code (test_no_job_that_can_write_runs_the_repos_code).
                assert granted == {"contents": "write", "pull-requests": "write"}
                continue
            if (path.name, name) == ("team-alert.yml", "alert"):
                # The model's monitoring issue, from the drift job's artifact; it runs no
                # repo code (test_no_job_that_can_write_runs_the_repos_code).
                assert granted == {"contents": "read", "issues": "write"}
                continue
            if (path.name, name) in INHERITING_READERS:
                # The caller's grant, which the template keeps to reading and the OIDC token
                # (test_generated_workflows_are_least_privilege_and_pinned).
                assert "permissions" not in job, f"{path.name}:{name}"
                continue
            if (path.name, name) == ("docs.yml", "deploy"):
                # Publishing to Pages needs both, and the job runs no repository code: one
                # pinned action deploys the artifact the read-only build job made.
                assert granted == {"pages": "write", "id-token": "write"}
                assert [step.get("uses", "").split("@")[0] for step in job["steps"]] == [
                    "actions/deploy-pages"
                ]
                continue
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
    from ci.template_constants import TARGETS

    for target, make in TARGETS.items():
        assert target.read_text(encoding="utf-8") == make(), (
            "run: uv run python -m ci.template_constants"
        )


#: What runs a team repo's code or its dependencies' code: never in a job that can write.
REPO_CODE = re.compile(
    r"\buv (run|sync|build|tool run)\b|\buvx\b|\bdvc\b|\bbentoml\b|\bpython3? -m (?!venv\b)"
    r"|\bpytest\b|\bpip install (-e|--editable|\.)|\bmake\b|(^|\s)(\./|source |\. |bash \w)"
)
#: Jobs that run the repo's code with the calling job's permissions: contents: read, and the
#: job's OIDC token where the data is on S3 (the issue asks for keys from it, never stored).
INHERITING_READERS = {("team-drift.yml", "drift"), ("team-retrain.yml", "retrain")}
#: Actions a job that can write may use: none runs the repo's code.
WRITER_ACTIONS = ("actions/checkout@", "actions/download-artifact@")


def test_no_job_that_can_write_runs_the_repos_code() -> None:
    """A job holding id-token or packages: write (or a secret) runs no repository code.

    A reusable job without its own `permissions` inherits the caller's, which may hold both:
    such a job may only check out (to read), download the build's artifact and run the
    platform's CLI installed alone from the lock. Everything that executes the repo's code
    or its dependencies (uv sync/run, dvc, bentoml, python -m) runs in a read-only job.
    """
    for path in sorted((ROOT / ".github" / "workflows").glob("team-*.yml")):
        flow = yaml.safe_load(path.read_text())
        for name, job in flow["jobs"].items():
            granted = job.get("permissions")
            can_write = granted is None or any(
                level == "write" for level in (granted or {}).values()
            )
            text = yaml.safe_dump(job)
            holds_secret = "secrets." in text
            if not (can_write or holds_secret) or (path.name, name) in INHERITING_READERS:
                continue
            if path.name == "team-release.yml":
                assert job.get("needs"), f"{path.name}:{name} can write but builds nothing"
            for step in job["steps"]:
                if "uses" in step:
                    assert step["uses"].startswith(WRITER_ACTIONS), f"{path.name}:{name}: {step}"
                    continue
                found = REPO_CODE.search(step["run"])
                assert found is None, f"{path.name}:{name} runs repo code: {found[0]!r} in {step}"
            if path.name == "team-ci.yml":
                raise AssertionError(f"{path.name}:{name} must not be able to write")
        # And the other way round: a job that runs the repo's code holds nothing.
        for name, job in flow["jobs"].items():
            runs = [REPO_CODE.search(step.get("run", "")) for step in job.get("steps", [])]
            if any(runs):
                text = yaml.safe_dump(job)
                assert "secrets." not in text and "id-token" not in text, f"{path.name}:{name}"
                if (path.name, name) in INHERITING_READERS:
                    assert "permissions" not in job  # the caller's: read, and OIDC on S3
                    continue
                assert job.get("permissions") == {"contents": "read"}, f"{path.name}:{name}"


def test_the_fleet_rollout_runs_team_code_only_in_a_job_without_secrets() -> None:
    """fleet-rollout.yml: the update jobs (copier, uv, paved check: the teams' code) get no
    secret, no permission and no checkout; only plan and deliver, which run none, hold the
    fleet token, and they run no `paved fleet update`."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "fleet-rollout.yml").read_text())
    jobs = workflow["jobs"]
    update = jobs["update"]
    assert update["permissions"] == {}
    assert "secrets." not in yaml.safe_dump(update)
    assert not any(
        str(step.get("uses", "")).startswith("actions/checkout") for step in update["steps"]
    )
    assert any("paved fleet update" in step.get("run", "") for step in update["steps"])
    holders = {name for name, job in jobs.items() if "secrets.fleet-token" in yaml.safe_dump(job)}
    assert holders == {"plan", "deliver"}
    for name in holders:
        runs = " ".join(step.get("run", "") for step in jobs[name]["steps"])
        assert "paved fleet update" not in runs and "uv run" not in runs
