"""`paved ci login` to cloud registries with the job's OIDC token, no stored key.

AWS STS and ECR are emulated by moto; GitHub's token service, Google's STS and IAM
Credentials, Entra ID and ACR's exchange by `tests/lib/fake_clouds.py`. The credentials each chain
ends with must then log buildah in to a real registry (Debian's docker-registry asking for
a password) and push to it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from paved._errors import PavedError
from paved.ci.aws import AwsKeys, sigv4_headers
from paved.ci.clouds import cloud_credentials, cloud_of
from paved.ci.image import login
from paved.ci.tokens import github_id_token

from ci.golden_path import free_port, running
from ci.oci_registry import local_registry
from tests.lib.fake_clouds import REQUEST_TOKEN, github_token
from tests.lib.helpers import loopback_server, moto_server, npm_tool

ROLE = "arn:aws:iam::123456789012:role/paved-push"
PROVIDER = "projects/123456/locations/global/workloadIdentityPools/github/providers/acme"
ACCOUNT = "pusher@acme-ml.iam.gserviceaccount.com"
PASSWORD = "short-lived-registry-password"


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The fake token services: their base URL and their request log."""
    log = tmp_path_factory.mktemp("clouds") / "requests.jsonl"
    port = free_port()
    script = str(Path(__file__).parents[1] / "lib" / "fake_clouds.py")
    command = [sys.executable, script, "--port", str(port), "--password", PASSWORD]
    with loopback_server([*command, "--log", str(log)], port):
        yield f"http://127.0.0.1:{port}", log


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-file image in local storage, to push; removed afterwards."""
    folder = tmp_path_factory.mktemp("probe")
    (folder / "probe.txt").write_text("probe\n")
    name = f"localhost/paved-login-probe:{folder.name}"
    container = _buildah("from", "scratch")
    try:
        _buildah("copy", container, str(folder / "probe.txt"), "/")
        _buildah("commit", "--quiet", container, name)
    finally:
        _buildah("rm", container)
    yield name
    _buildah("rmi", name)


def _buildah(*args: str) -> str:
    done = subprocess.run(["buildah", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """moto's AWS emulator on a free loopback port."""
    with moto_server() as url:
        yield url


def _job_env(base: str, **extra: str) -> dict[str, str]:
    """What a GitHub job granted `id-token: write` sees, with the endpoints redirected."""
    return {
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"{base}/github/token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
        "GITHUB_RUN_ID": "4242",
        "PAVED_GCP_STS_URL": f"{base}/google/sts",
        "PAVED_GCP_IAMCREDENTIALS_URL": f"{base}/google/iam",
        "AZURE_AUTHORITY_HOST": f"{base}/entra",
        "PAVED_ACR_URL": f"{base}/acr",
        **extra,
    }


def _requests(log: Path) -> list[dict[str, object]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [json.loads(line) for line in lines]


def _expected_ecr_login(moto: str) -> tuple[str, str]:
    """ECR's user and password, asked by botocore itself (not by the code under test)."""
    import boto3

    ecr = boto3.client(
        "ecr",
        region_name="eu-west-1",
        endpoint_url=moto,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    return user, password


@pytest.mark.libs
@pytest.mark.parametrize("session_token", ["", "FQoGZXIvYXdzEXAMPLE"])
def test_sigv4_signature_is_botocores(session_token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    now = dt.datetime(2026, 11, 23, 1, 2, 3, tzinfo=dt.UTC)
    url = "https://api.ecr.eu-west-1.amazonaws.com/?b=2&a=x%20y"
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
    }
    ours = sigv4_headers(
        "POST",
        url,
        headers,
        b"{}",
        keys=AwsKeys("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", session_token),
        region="eu-west-1",
        service="ecr",
        now=now,
    )
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now.replace(tzinfo=None))
    request = AWSRequest("POST", url, data=b"{}", headers=dict(headers))
    credentials = Credentials(
        "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", session_token or None
    )
    botocore.auth.SigV4Auth(credentials, "ecr", "eu-west-1").add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"]


@pytest.mark.libs
@pytest.mark.parametrize(
    ("host", "cloud"),
    [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "aws"),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "aws"),
        ("europe-docker.pkg.dev", "gcp"),
        ("gcr.io", "gcp"),
        ("acme.azurecr.io", "azure"),
        ("ghcr.io", None),
        ("registry.acme.example", None),
        ("ecr.example.com", None),
        ("attacker.example#.azurecr.io", None),
        ("acme.azurecr.cn", None),
    ],
)
def test_cloud_is_found_from_the_host(host: str, cloud: str | None) -> None:
    assert cloud_of(host) == cloud


@pytest.mark.libs
@pytest.mark.parametrize(
    ("registry", "variable"),
    [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml", "PAVED_AWS_ROLE_ARN"),
        ("europe-docker.pkg.dev/acme/ml", "PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER"),
        ("acme.azurecr.io/ml", "PAVED_AZURE_CLIENT_ID and PAVED_AZURE_TENANT_ID"),
    ],
)
def test_cloud_registry_without_an_identity_names_the_variable(
    registry: str, variable: str
) -> None:
    with pytest.raises(PavedError, match=f"{variable} not set"):
        login(registry, builder="buildah", env={})


@pytest.mark.libs
def test_without_id_token_permission_the_error_says_so() -> None:
    env = {"PAVED_AWS_ROLE_ARN": ROLE}
    with pytest.raises(PavedError, match="needs `permissions: id-token: write`"):
        login("123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml", builder="buildah", env=env)


@pytest.mark.libs
@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"PAVED_AWS_ROLE_ARN": "paved-push"}, "not an IAM role ARN"),
        ({"PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER": "acme/github"}, "not a provider's name"),
    ],
)
def test_malformed_identity_is_refused_before_any_request(
    variables: dict[str, str], message: str, clouds: tuple[str, Path]
) -> None:
    base, log = clouds
    before = len(_requests(log))
    cloud = "aws" if "PAVED_AWS_ROLE_ARN" in variables else "gcp"
    env = _job_env(base, AWS_REGION="eu-west-1", **variables)
    with pytest.raises(PavedError, match=message):
        host = {"aws": "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "gcp": "gcr.io"}[cloud]
        cloud_credentials(cloud, host, env)
    assert len(_requests(log)) == before


@pytest.mark.libs
@pytest.mark.parametrize(
    ("registry", "cloud", "extra", "message"),
    [
        ("registry.example.com/acme.azurecr.io", "azure", {}, "not a host of Azure Container"),
        ("acme.azurecr.io.evil.example/ml", "azure", {}, "not a host of Azure Container"),
        ("europe-docker.pkg.dev/acme", "aws", {}, "not a host of AWS ECR"),
        ("evil.example#.azurecr.io/ml", None, {}, "is not a host name"),
        ("user@acme.azurecr.io/ml", "azure", {}, "is not a host name"),
        # An emulator on this machine takes the region from AWS_REGION: it must be a region.
        ("127.0.0.1:5000/ml", "aws", {"AWS_REGION": "evil.example#"}, "not a region name"),
        ("127.0.0.1:5000/ml", "aws", {"AWS_REGION": "eu-west-1.evil.example/"}, "not a region"),
    ],
)
def test_a_named_cloud_must_match_the_host_before_any_request(
    clouds: tuple[str, Path], registry: str, cloud: str | None, extra: dict[str, str], message: str
) -> None:
    base, log = clouds
    identity = {
        "PAVED_AWS_ROLE_ARN": ROLE,
        "PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER": PROVIDER,
        "PAVED_AZURE_TENANT_ID": "acme-tenant",
        "PAVED_AZURE_CLIENT_ID": "paved-app",
    }
    env = _job_env(base, **identity, **extra)
    before = len(_requests(log))
    with pytest.raises(PavedError, match=message):
        login(registry, builder="buildah", cloud=cloud, env=env)
    assert len(_requests(log)) == before, "a request went out before the refusal"


@pytest.mark.libs
@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("html", "answered something that is not JSON"),
        ("huge", "answered more than 1024 KiB"),
        ("cut", "did not answer at .*IncompleteRead"),
        ("missing", r"refused \(404\)"),
    ],
)
def test_a_broken_token_service_is_one_clear_line(
    clouds: tuple[str, Path], path: str, message: str
) -> None:
    base, _ = clouds
    env = _job_env(base, ACTIONS_ID_TOKEN_REQUEST_URL=f"{base}/github/{path}?api-version=2.0")
    env.update(PAVED_AWS_ROLE_ARN=ROLE)
    command = [sys.executable, "-m", "paved", "ci", "login", "--builder", "buildah"]
    registry = ["--registry", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml"]
    done = subprocess.run(
        [*command, *registry], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert re.search(message, done.stderr), done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr


@pytest.mark.libs
def test_tokens_follow_no_redirect_and_no_plain_http(clouds: tuple[str, Path]) -> None:
    base, log = clouds
    env = _job_env(base, ACTIONS_ID_TOKEN_REQUEST_URL=f"{base}/github/moved?api-version=2.0")
    with pytest.raises(PavedError, match=r"GitHub's OIDC token service refused \(302\)"):
        github_id_token("sts.amazonaws.com", env)
    assert [entry["path"] for entry in _requests(log)][-1] == "/github/moved"
    before = len(_requests(log))
    env = _job_env(base, PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER=PROVIDER)
    env["PAVED_GCP_STS_URL"] = "http://sts.example.com"
    with pytest.raises(PavedError, match=r"PAVED_GCP_STS_URL 'http://sts\.example\.com'"):
        cloud_credentials("gcp", "europe-docker.pkg.dev", env)
    assert len(_requests(log)) == before  # refused before any token was asked for


@pytest.mark.libs
def test_refusals_carry_the_services_reason(clouds: tuple[str, Path]) -> None:
    base, _ = clouds
    env = _job_env(base, PAVED_AZURE_TENANT_ID="acme-tenant", PAVED_AZURE_CLIENT_ID="unknown-app")
    with pytest.raises(PavedError, match=r"Microsoft Entra ID refused \(400\).*AADSTS700016"):
        cloud_credentials("azure", "acme.azurecr.io", env)
    env = {**env, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "stale"}
    with pytest.raises(PavedError, match=r"GitHub's OIDC token service refused \(403\)"):
        cloud_credentials("azure", "acme.azurecr.io", env)


@pytest.mark.image
@pytest.mark.parametrize("cloud", ["aws", "gcp", "gcp-federated", "azure"])
def test_oidc_login_then_push_to_a_registry_that_needs_the_password(
    cloud: str, clouds: tuple[str, Path], moto: str, probe: str, tmp_path: Path
) -> None:
    base, log = clouds
    identity: Mapping[str, str] = {
        "aws": {
            "PAVED_AWS_ROLE_ARN": ROLE,
            "AWS_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL_STS": moto,
            "AWS_ENDPOINT_URL_ECR": moto,
        },
        "gcp": {
            "PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER": PROVIDER,
            "PAVED_GCP_SERVICE_ACCOUNT": ACCOUNT,
        },
        "gcp-federated": {"PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER": PROVIDER},
        "azure": {"PAVED_AZURE_TENANT_ID": "acme-tenant", "PAVED_AZURE_CLIENT_ID": "paved-app"},
    }[cloud]
    user, password = {
        "aws": _expected_ecr_login(moto) if cloud == "aws" else ("", ""),
        "gcp": ("oauth2accesstoken", PASSWORD),
        "gcp-federated": ("oauth2accesstoken", "google-federated-token"),
        "azure": ("00000000-0000-0000-0000-000000000000", PASSWORD),
    }[cloud]
    authfile = tmp_path / "auth.json"
    authfile.write_text('{"auths": {}}')  # buildah wants the file to exist
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PAVED_", "REGISTRY_"))},
        **_job_env(base, **identity),
        "REGISTRY_AUTH_FILE": str(authfile),
    }
    with local_registry(users={user: password}) as registry:
        ref = f"{registry.host}/acme/probe:1"
        refused = _push(probe, ref, env)
        assert refused.returncode != 0 and "authentication required" in refused.stderr.lower()

        before = len(_requests(log))
        command = [
            sys.executable,
            "-m",
            "paved",
            "ci",
            "login",
            "--registry",
            f"{registry.host}/acme",
            "--cloud",
            cloud.partition("-")[0],
            "--builder",
            "buildah",
            "--no-tls-verify",
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert f"logged in to {registry.host} as {user}" in done.stderr
        assert password not in done.stdout + done.stderr

        assert registry.host in json.loads(authfile.read_text())["auths"]
        pushed = _push(probe, ref, env)
        assert pushed.returncode == 0, pushed.stderr

    asked = _requests(log)[before:]
    audience = {
        "aws": "sts.amazonaws.com",
        "gcp": f"https://iam.googleapis.com/{PROVIDER}",
        "azure": "api://AzureADTokenExchange",
    }[cloud.partition("-")[0]]
    assert asked[0]["path"] == "/github/token"
    assert asked[0]["fields"] == {"api-version": "2.0", "audience": audience}
    if cloud.startswith("gcp"):
        sts = asked[1]["fields"]
        assert sts["audience"] == f"//iam.googleapis.com/{PROVIDER}"
        assert sts["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
        assert sts["subject_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
        assert sts["subject_token"] == github_token(audience)
        assert len(asked) == (3 if cloud == "gcp" else 2)
    if cloud == "gcp":
        assert asked[2]["path"].endswith(f"/serviceAccounts/{ACCOUNT}:generateAccessToken")
        assert asked[2]["fields"]["scope"] == ["https://www.googleapis.com/auth/cloud-platform"]
    if cloud == "azure":
        entra, exchange = asked[1], asked[2]
        assert entra["path"] == "/entra/acme-tenant/oauth2/v2.0/token"
        assert entra["fields"]["client_assertion_type"] == (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        )
        assert exchange["fields"]["service"] == registry.host
        assert exchange["fields"]["grant_type"] == "access_token"


def _push(image: str, ref: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["buildah", "push", "--tls-verify=false", image, f"docker://{ref}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.libs
@pytest.mark.parametrize(
    ("region", "fips", "expected"),
    [
        (
            "eu-west-1",
            False,
            ("https://sts.eu-west-1.amazonaws.com", "https://api.ecr.eu-west-1.amazonaws.com"),
        ),
        (
            "us-east-1",
            True,
            (
                "https://sts-fips.us-east-1.amazonaws.com",
                "https://ecr-fips.us-east-1.amazonaws.com",
            ),
        ),
        (
            "cn-north-1",
            False,
            (
                "https://sts.cn-north-1.amazonaws.com.cn",
                "https://api.ecr.cn-north-1.amazonaws.com.cn",
            ),
        ),
    ],
)
def test_aws_endpoints(region: str, fips: bool, expected: tuple[str, str]) -> None:
    from paved.ci.aws import _aws_endpoints

    assert _aws_endpoints(region, {}, fips=fips) == expected


@pytest.mark.libs
def test_storage_login_then_the_drift_report_reads_the_prediction_log_from_s3(
    clouds: tuple[str, Path], moto: str, tmp_path: Path, iris: Any
) -> None:
    """The monitoring job's way to a log on S3: the job's OIDC token for STS session keys
    (`paved ci storage-login`), then `paved-ml drift --log s3://...` with them. The log is
    only in moto's bucket; without the keys the read is refused with one clear line."""
    import boto3

    base, _ = clouds
    team, local = _drift_team(tmp_path, iris)
    setup = boto3.client(
        "s3",
        region_name="eu-west-1",
        endpoint_url=moto,
        aws_access_key_id="AKIDSETUP",
        aws_secret_access_key="setup",
    )
    setup.create_bucket(
        Bucket="ml-logs", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    for path in sorted(local.glob("*.parquet")):
        setup.upload_file(str(path), "ml-logs", f"iris/{path.name}")
        path.unlink()  # the log is in the bucket only

    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    job = {
        **clean,
        **_job_env(base),
        "PAVED_AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/ml-data-reader",
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_STS": moto,
    }
    login, keys = _storage_login("aws", job, tmp_path / "github-env")
    assert set(keys) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    assert all(f"::add-mask::{value}" in login.stdout for value in keys.values())
    assert keys["AWS_ACCESS_KEY_ID"] != "AKIDSETUP" and keys["AWS_SESSION_TOKEN"]
    assert keys["AWS_SECRET_ACCESS_KEY"] not in login.stderr

    storage = {**clean, "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_S3": moto}
    refused = _reads_with_and_only_with(team, "s3://ml-logs/iris", storage, keys)
    assert "s3://ml-logs/iris: NoCredentialsError" in refused


def _drift_team(tmp_path: Path, iris: Any) -> tuple[Path, Path]:
    """A team repo whose champion serves iris, and a shifted prediction log of it (a folder,
    for the test to move into a bucket)."""
    from tests.libs.test_drift import logged, monitored_team, sample

    params = "monitoring:\n  drift_share: 0.4\n"
    team, model = monitored_team(tmp_path / "team", iris, params)
    shifted = sample(iris, 300, seed=1, shift={"pl": 2.0, "pw": 1.0})
    return team, logged(tmp_path / "log", shifted, model)


def _drift(team: Path, log: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`paved-ml drift --log LOG` in `team`, with `env` (and the test library importable)."""
    reports = team.parent / "reports"
    command = [
        sys.executable, "-m", "paved_ml.cli", "drift", "--log", log,
        "--contract", "tests.lib.iris_contract:CONTRACT", "--no-tracking",
        "--report", str(reports / "drift.html"), "--summary", str(reports / "drift.json"),
    ]  # fmt: skip
    library = {"PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.run(
        command, cwd=team, env={**env, **library}, capture_output=True, text=True, timeout=300
    )


def _reads_with_and_only_with(
    team: Path, log: str, store: Mapping[str, str], handed: Mapping[str, str]
) -> str:
    """The drift report reads the shifted log at `log` with what storage-login `handed` over
    (and finds the drift), and is refused without it: the refusal's stderr."""
    read = _drift(team, log, {**store, **handed})
    assert read.returncode == 1, read.stdout + read.stderr  # drift found, in the stored log
    assert "DRIFTED  pl" in read.stdout and "300 logged rows" in read.stdout
    refused = _drift(team, log, store)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"cannot read the prediction log at {log}:" in refused.stderr
    return refused.stderr


def _storage_login(
    cloud: str, job: Mapping[str, str], handed: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """`paved ci storage-login --cloud CLOUD` as a job's step runs it; what it handed over."""
    login = subprocess.run(
        [sys.executable, "-m", "paved", "ci", "storage-login", "--cloud", cloud],
        env={**job, "GITHUB_ACTIONS": "true", "GITHUB_ENV": str(handed)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    return login, dict(line.split("=", 1) for line in handed.read_text().splitlines())


#: Azurite, Microsoft's Blob Storage emulator (npm), installed once into the tools cache.
AZURITE = "3.35.0"
#: Azurite's well-known development account and key (the test's setup uses them only).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
TENANT = "4f2c7c8e-0000-4000-8000-0000000a2b3c"


def _azurite_command() -> Path:
    return npm_tool("azurite", AZURITE) / ".bin" / "azurite-blob"


@pytest.fixture
def azurite(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Azurite's Blob Storage on a free loopback port, over https with a certificate made
    for it (OAuth, which user delegation keys need, is https only): (its account URL, the
    certificate to trust)."""
    tls = tmp_path / "tls"
    tls.mkdir()
    cert, key = tls / "cert.pem", tls / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    port = free_port()
    process = subprocess.Popen(
        [str(_azurite_command()), "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--location", str(tmp_path / "azurite"), "--oauth", "basic", "--cert", str(cert),
         "--key", str(key), "--skipApiVersionCheck", "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    with running(process, listening, timeout=60, failure=lambda: "Azurite did not start"):
        yield f"https://127.0.0.1:{port}/{DEV_ACCOUNT}", cert


@pytest.mark.libs
def test_storage_login_signs_a_container_sas_the_drift_report_reads_the_log_from_azure_with(
    clouds: tuple[str, Path], azurite: tuple[str, Path], tmp_path: Path, iris: Any
) -> None:
    """Azure's way to a log in Blob Storage: the job's OIDC token signs in to Entra ID, the
    account gives a user delegation key, and `paved ci storage-login --cloud azure` signs an
    hour's SAS for the one container with it. Azurite checks the token and the signature:
    the drift report reads the log through it, another container of the account refuses it,
    and without it the read is refused with one clear line."""
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import BlobServiceClient

    base, log = clouds
    account_url, cert = azurite
    team, local = _drift_team(tmp_path, iris)
    setup = BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=https;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint={account_url};",
        connection_verify=str(cert),
    )
    logs = setup.create_container("ml-logs")
    for path in sorted(local.glob("*.parquet")):
        logs.upload_blob(f"iris/{path.name}", path.read_bytes())
        path.unlink()  # the log is in the container only
    setup.create_container("other").upload_blob("secret.txt", b"not for the monitoring job")

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AWS_"))}
    job = {
        **clean,
        **_job_env(base),
        "PAVED_AZURE_CLIENT_ID": "ml-data-reader",
        "PAVED_AZURE_TENANT_ID": TENANT,
        "PAVED_AZURE_STORAGE_ACCOUNT": DEV_ACCOUNT,
        "PAVED_AZURE_CONTAINER": "ml-logs",
        "PAVED_AZURE_BLOB_URL": account_url,
        "SSL_CERT_FILE": str(cert),
    }
    before = len(_requests(log))  # the token services serve the module's other tests too
    login, handed = _storage_login("azure", job, tmp_path / "github-env")
    assert list(handed) == ["AZURE_STORAGE_CONNECTION_STRING"]
    connection = handed["AZURE_STORAGE_CONNECTION_STRING"]
    assert f"::add-mask::{connection}" in login.stdout
    sas = dict(urllib.parse.parse_qsl(connection.split("SharedAccessSignature=", 1)[1]))
    assert (sas["sr"], sas["sp"], sas["sktid"]) == ("c", "racwdl", TENANT)
    assert DEV_KEY not in connection and sas["sig"] not in login.stderr
    assert "a SAS for the container ml-logs of devstoreaccount1" in login.stderr
    entra = [r for r in _requests(log)[before:] if str(r["path"]).startswith("/entra/")]
    assert [r["fields"]["scope"] for r in entra] == ["https://storage.azure.com/.default"]

    storage = {**clean, "SSL_CERT_FILE": str(cert)}
    _reads_with_and_only_with(team, "az://ml-logs/iris", storage, handed)

    handed_client = BlobServiceClient.from_connection_string(
        connection, connection_verify=str(cert)
    )
    with pytest.raises(HttpResponseError) as other:
        handed_client.get_container_client("other").download_blob("secret.txt").readall()
    assert other.value.status_code == 403  # the SAS is for ml-logs only


@pytest.mark.libs
@pytest.mark.parametrize(
    ("cloud", "extra", "message"),
    [
        ("azure", {"PAVED_AZURE_CONTAINER": "ml-logs"}, "set PAVED_AZURE_STORAGE_ACCOUNT:"),
        ("azure", {"PAVED_AZURE_STORAGE_ACCOUNT": "mldata"}, "set PAVED_AZURE_CONTAINER:"),
        (
            "azure",
            {"PAVED_AZURE_STORAGE_ACCOUNT": "evil.example.com#", "PAVED_AZURE_CONTAINER": "logs"},
            "account 'evil.example.com#' is not an account name",
        ),
        (
            "azure",
            {"PAVED_AZURE_STORAGE_ACCOUNT": "mldata", "PAVED_AZURE_CONTAINER": "Logs/../x"},
            "container 'Logs/../x' is not a container name",
        ),
        (
            "azure",
            {
                "PAVED_AZURE_STORAGE_ACCOUNT": "mldata",
                "PAVED_AZURE_CONTAINER": "logs",
                "PAVED_AZURE_BLOB_URL": "http://blob.example.com",
            },
            "tokens go to https URLs only",
        ),
        ("gcp", {}, "set PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER to the provider"),
        (
            "gcp",
            {"PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER": "https://evil.example.com/x"},
            "is not a provider's name",
        ),
        ("gcs", {}, "storage-login knows aws, gcp, azure, not 'gcs'"),
    ],
)
def test_storage_login_refuses_before_asking_for_any_token(
    clouds: tuple[str, Path], cloud: str, extra: dict[str, str], message: str
) -> None:
    """A missing or malformed name is refused before the job's OIDC token is asked for: no
    token goes to a host the names would make up."""
    from paved.ci.clouds import storage_credentials

    base, log = clouds
    before = len(_requests(log))
    env = _job_env(base, PAVED_AZURE_CLIENT_ID="reader", PAVED_AZURE_TENANT_ID=TENANT, **extra)
    with pytest.raises(PavedError, match=re.escape(message)):
        storage_credentials(cloud=cloud, env=env)
    assert len(_requests(log)) == before


@pytest.fixture
def gcs(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """gcp-storage-emulator behind a gate that takes only the token the fake IAM Credentials
    issue (PASSWORD): (the emulator's own URL, for the test's setup; the gate's URL, for the
    code under test; the gate's request log)."""
    storage_port, gate_port = free_port(), free_port()
    emulator = [
        str(Path(sys.executable).with_name("gcp-storage-emulator")), "start", "--host",
        "127.0.0.1", "--port", str(storage_port), "--in-memory", "--quiet",
    ]  # fmt: skip
    log = tmp_path / "gate.jsonl"
    gate = [
        sys.executable, str(Path(__file__).parents[1] / "lib" / "bearer_gate.py"),
        "--port", str(gate_port), "--upstream", f"http://127.0.0.1:{storage_port}",
        "--token", PASSWORD, "--log", str(log),
    ]  # fmt: skip
    with loopback_server(emulator, storage_port), loopback_server(gate, gate_port):
        yield f"http://127.0.0.1:{storage_port}", f"http://127.0.0.1:{gate_port}", log


@pytest.mark.libs
def test_storage_login_hands_a_cloud_storage_token_the_drift_report_reads_the_log_from_gcs_with(
    clouds: tuple[str, Path], gcs: tuple[str, str, Path], tmp_path: Path, iris: Any
) -> None:
    """Google's way to a log in Cloud Storage: the job's OIDC token is exchanged at STS and
    the service account impersonated for an hour's token scoped to objects, which `paved ci
    storage-login --cloud gcp` hands over as Application Default Credentials (read by gcsfs,
    so by DVC's gs remote and fsspec's gs:// alike). The store only answers that token: the
    drift report reads the log with it, and without it the read is refused."""
    from gcsfs.core import GCSFileSystem  # the plain JSON API, which the emulator speaks

    base, log = clouds
    storage, gate, gate_log = gcs
    team, local = _drift_team(tmp_path, iris)
    setup = GCSFileSystem(token="anon", endpoint_url=storage, skip_instance_cache=True)
    setup.mkdir("ml-logs")
    for path in sorted(local.glob("*.parquet")):
        setup.put_file(str(path), f"ml-logs/iris/{path.name}")
        path.unlink()  # the log is in the bucket only

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GCE_"))}
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    job = {
        **clean,
        **_job_env(base),
        "RUNNER_TEMP": str(runner_temp),
        "PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER": PROVIDER,
        "PAVED_GCP_SERVICE_ACCOUNT": ACCOUNT,
    }
    before = len(_requests(log))  # the token services serve the module's other tests too
    login, handed = _storage_login("gcp", job, tmp_path / "github-env")
    assert list(handed) == ["GOOGLE_APPLICATION_CREDENTIALS"]
    credentials = handed["GOOGLE_APPLICATION_CREDENTIALS"]
    assert Path(credentials).parent.parent == runner_temp  # outside the checkout
    assert Path(credentials).stat().st_mode & 0o077 == 0  # the job's user's alone
    assert f"::add-mask::{PASSWORD}" in login.stdout and PASSWORD not in login.stderr
    asked = [r for r in _requests(log)[before:] if str(r["path"]).startswith("/google/")]
    assert asked[0]["fields"]["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert asked[1]["fields"]["scope"] == [  # the token handed over reaches objects alone
        "https://www.googleapis.com/auth/devstorage.read_write"
    ]

    store = {
        **clean,
        "STORAGE_EMULATOR_HOST": gate,
        "NO_GCE_CHECK": "true",  # no metadata server to ask instead
        # The emulator speaks the JSON API only, not the gRPC one gcsfs asks bucket types of.
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    }
    probed = len(gate_log.read_text().splitlines())  # the fixture's check that it answers
    _reads_with_and_only_with(team, "gs://ml-logs/iris", store, handed)
    answered = [json.loads(line) for line in gate_log.read_text().splitlines()[probed:]]
    assert answered[0]["allowed"] and not answered[-1]["allowed"]  # with the token, without


@pytest.mark.libs
def test_labels_and_the_log_are_read_from_s3_by_paved_ml_feedback(
    moto: str, tmp_path: Path
) -> None:
    """Labels arrive where the log is, in object storage: `paved-ml feedback s3://...` reads
    a folder of them there, as `--log s3://...` reads the log, and judges the accuracy."""
    import boto3

    from tests.libs.test_feedback import labels_for, served_log

    log = served_log(tmp_path / "log", days=1)
    team = tmp_path / "team"
    team.mkdir()
    (team / "params.yaml").write_text("monitoring:\n  min_f1_macro: 0.85\n  min_labels: 20\n")
    keys = {"AWS_ACCESS_KEY_ID": "AKIDLABELS", "AWS_SECRET_ACCESS_KEY": "labels"}
    s3 = boto3.client("s3", region_name="eu-west-1", endpoint_url=moto, **{
        "aws_access_key_id": keys["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": keys["AWS_SECRET_ACCESS_KEY"],
    })  # fmt: skip
    s3.create_bucket(
        Bucket="ml-feedback", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    for path in sorted((tmp_path / "log").glob("*.parquet")):
        s3.upload_file(str(path), "ml-feedback", f"log/{path.name}")
    noisy = labels_for(log, wrong_share=0.5)
    half = len(noisy) // 2  # two files: a folder of labels, read in name order
    noisy[:half].to_csv(tmp_path / "a.csv", index=False)
    noisy[half:].to_parquet(tmp_path / "b.parquet")
    for name in ("a.csv", "b.parquet"):
        s3.upload_file(str(tmp_path / name), "ml-feedback", f"labels/{name}")
    s3.put_object(Bucket="ml-feedback", Key="labels/README.txt", Body=b"not labels")

    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env = {**clean, **keys, "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_S3": moto}
    feedback = [
        sys.executable, "-m", "paved_ml.cli", "feedback", "s3://ml-feedback/labels",
        "--log", "s3://ml-feedback/log", "--label-column", "species", "--no-tracking",
        "--summary", str(tmp_path / "feedback.json"),
    ]  # fmt: skip
    done = subprocess.run(feedback, cwd=team, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr  # the planted noise is found
    assert f"{len(noisy)} of {len(noisy)} labels joined with a logged prediction" in done.stdout
    assert "BELOW  f1_macro:" in done.stdout
    missing = subprocess.run(
        [*feedback[:4], "s3://ml-feedback/nothing/", *feedback[5:]],
        cwd=team, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "no labels at s3://ml-feedback/nothing/" in missing.stderr
