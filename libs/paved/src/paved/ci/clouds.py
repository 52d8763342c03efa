"""Registry credentials for the cloud registries from the CI job's OIDC token.

A GitHub Actions job granted `id-token: write` can ask GitHub for a short-lived JSON Web
Token naming the repository, ref and workflow. Each cloud trusts that token when an
administrator has set up the trust once (an IAM role, a workload identity pool, a
federated credential of an app registration) and trades it for a registry credential
valid for minutes to an hour. No key is stored anywhere.

- AWS ECR: STS `AssumeRoleWithWebIdentity` (unsigned) gives session keys, and ECR's
  `GetAuthorizationToken` (signed with Signature Version 4) the registry password.
- Google Artifact Registry: the Security Token Service exchanges the token for a federated
  access token; with a service account, IAM Credentials impersonates it.
- Azure Container Registry: Microsoft Entra ID takes the token as a client assertion and
  gives an access token, which the registry's `/oauth2/exchange` turns into a refresh token.

Endpoints follow the clouds' defaults. Each can be overridden with an environment variable
(for sovereign clouds and emulators): the AWS SDKs' `AWS_ENDPOINT_URL_STS` and
`AWS_ENDPOINT_URL_ECR`, the Azure SDKs' `AZURE_AUTHORITY_HOST`, and `PAVED_GCP_STS_URL`,
`PAVED_GCP_IAMCREDENTIALS_URL`, `PAVED_ACR_URL` (paved.ci.aws, paved.ci.gcp, paved.ci.azure).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from paved._errors import PavedError
from paved.ci.aws import ECR_HOST, aws_credentials, storage_keys
from paved.ci.azure import azure_credentials, storage_sas
from paved.ci.gcp import gcp_credentials, storage_token
from paved.ci.tokens import LOOPBACK, Credentials, stamp

__all__ = [
    "CLOUDS",
    "HOST",
    "STORAGE_CLOUDS",
    "Cloud",
    "StorageLogin",
    "cloud_credentials",
    "cloud_for_login",
    "cloud_of",
    "storage_credentials",
]


@dataclass(frozen=True)
class Cloud:
    """A cloud whose registry CI logs in to with its OIDC token."""

    #: The whole registry host (named groups: what the host tells about the endpoints).
    pattern: str
    #: The registry's name, for messages.
    title: str
    #: The variables naming the identity to assume (repository variables in CI).
    identity: tuple[str, ...]


#: Cloud registries, by the name `--cloud` takes. The template's copy of the patterns
#: (templates/_shared/clouds.jinja) is generated from these by ci/template_constants.py.
CLOUDS: dict[str, Cloud] = {
    "aws": Cloud(
        ECR_HOST,
        "AWS ECR",
        ("PAVED_AWS_ROLE_ARN",),
    ),
    "gcp": Cloud(
        r"([a-z0-9-]+\.)?gcr\.io|[a-z0-9-]+-docker\.pkg\.dev",
        "Google Artifact Registry",
        ("PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER",),
    ),
    # The public cloud only: the sovereign ones take other audiences and scopes.
    "azure": Cloud(
        r"[a-z0-9]+(-[a-z0-9]+)?\.azurecr\.io",
        "Azure Container Registry",
        ("PAVED_AZURE_CLIENT_ID", "PAVED_AZURE_TENANT_ID"),
    ),
}
#: A registry host: a lowercase DNS name or IPv4 address, with an optional port.
HOST = r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?"


def cloud_of(host: str) -> str | None:
    """The cloud whose registry `host` is (`aws`, `gcp`, `azure`), or None."""
    return next((name for name, cloud in CLOUDS.items() if re.fullmatch(cloud.pattern, host)), None)


def cloud_for_login(host: str, cloud: str | None) -> str | None:
    """The cloud to log in to `host` with: `cloud` if named and the host agrees, else found.

    A named cloud is checked against the host before any token is asked for: a token (or the
    password it buys) goes to that cloud's own registry hosts only, or to a registry on this
    machine (an emulator). A decoy such as `registry.example.com` with `--cloud azure` is
    refused.
    """
    if not re.fullmatch(HOST, host):
        raise PavedError(
            f"registry host {host!r} is not a host name (lowercase name or address, "
            "optional :port, no scheme, user or path)"
        )
    found = cloud_of(host)
    if cloud is None:
        return found
    if cloud not in CLOUDS:
        raise PavedError(f"unknown cloud {cloud!r}: choose from {', '.join(CLOUDS)}")
    if found != cloud and host.split(":", maxsplit=1)[0] not in LOOPBACK:
        raise PavedError(
            f"--cloud {cloud}: {host} is not a host of {CLOUDS[cloud].title}, and its "
            "OIDC credentials go to no other registry"
        )
    return cloud


def cloud_credentials(cloud: str, host: str, env: Mapping[str, str]) -> Credentials:
    """Trade the job's OIDC token for credentials of `host`, a registry of `cloud`."""
    if cloud not in CLOUDS:
        raise PavedError(f"unknown cloud {cloud!r}: choose from {', '.join(CLOUDS)}")
    cloud_for_login(host, cloud)
    missing = [name for name in CLOUDS[cloud].identity if not env.get(name)]
    if missing:
        raise PavedError(
            f"{host} is a {CLOUDS[cloud].title} registry and {' and '.join(missing)} "
            "not set: name the identity CI assumes (in CI, a repository variable of the same "
            "name, passed by the release workflow of a repo generated for this kind of "
            "registry: after changing the kind, `copier update` with the new "
            "container_registry)"
        )
    if cloud == "aws":
        return aws_credentials(host, env)
    if cloud == "gcp":
        return gcp_credentials(env)
    return azure_credentials(host, env)


#: The clouds `paved ci storage-login` reaches the repo's data on.
STORAGE_CLOUDS = ("aws", "gcp", "azure")


@dataclass(frozen=True)
class StorageLogin:
    """What reaches the repo's data for an hour: variables for the job's later steps."""

    #: Credentials: masked in the log before they are handed over.
    secrets: dict[str, str]
    #: Settings that are no secret (a folder, a switch).
    settings: dict[str, str]
    #: What was got, for the log.
    what: str
    #: Values that are handed over in a file: masked in the log too.
    masks: tuple[str, ...] = ()


def storage_credentials(*, cloud: str, env: Mapping[str, str]) -> StorageLogin:
    """The variables that reach the repo's data on `cloud` for an hour.

    aws: session keys of the role PAVED_AWS_ROLE_ARN (the AWS SDKs' variables). gcp: an
    access token (objects only) through PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER (and
    PAVED_GCP_SERVICE_ACCOUNT), in an Application Default Credentials file
    (GOOGLE_APPLICATION_CREDENTIALS) that DVC's gs remote and fsspec's gs:// read.
    azure: a SAS for the container PAVED_AZURE_CONTAINER of the account
    PAVED_AZURE_STORAGE_ACCOUNT, signed with a user delegation key of the app
    PAVED_AZURE_CLIENT_ID (tenant PAVED_AZURE_TENANT_ID), as AZURE_STORAGE_CONNECTION_STRING,
    which DVC's azure remote and adlfs read. Each from the job's OIDC token: no stored key.
    """
    if cloud == "aws":
        keys = storage_keys(env)
        secrets = {
            "AWS_ACCESS_KEY_ID": keys.access_key,
            "AWS_SECRET_ACCESS_KEY": keys.secret_key,
            "AWS_SESSION_TOKEN": keys.session_token,
        }
        what = f"session keys of {env['PAVED_AWS_ROLE_ARN']} for an hour"
        return StorageLogin(secrets, {}, what)
    if cloud == "gcp":
        token, expiry = storage_token(env)
        credentials = _google_credentials_file(token, expiry, env)
        settings = {"GOOGLE_APPLICATION_CREDENTIALS": str(credentials)}
        what = f"a Cloud Storage token until {stamp(expiry)}"
        return StorageLogin({}, settings, what, masks=(token,))
    if cloud == "azure":
        names = ("PAVED_AZURE_STORAGE_ACCOUNT", "PAVED_AZURE_CONTAINER")
        missing = [name for name in names if not env.get(name)]
        if missing:
            raise PavedError(f"set {' and '.join(missing)}: where the repo's data is on Azure")
        storage = storage_sas(env, account=env[names[0]], container=env[names[1]])
        what = f"a SAS for the container {storage.container} of {storage.account}, "
        what += f"until {storage.expiry}"
        secrets = {"AZURE_STORAGE_CONNECTION_STRING": storage.connection_string}
        return StorageLogin(secrets, {}, what)
    raise PavedError(f"storage-login knows {', '.join(STORAGE_CLOUDS)}, not {cloud!r}")


def _google_credentials_file(token: str, expiry: dt.datetime, env: Mapping[str, str]) -> Path:
    """Application Default Credentials holding `token` until `expiry`, in a file of their own.

    The `authorized_user` form (what google-auth's `Credentials.to_json` writes) with the
    token and its expiry, and nothing to refresh it with: google-auth, so gcsfs, so DVC's gs
    remote and fsspec's gs:// alike, use the token for its hour, then fail, never renew.
    """
    # A new folder of this user's alone (the job's RUNNER_TEMP, else the system's temp): a
    # fixed name in a shared /tmp could be another user's, or a link planted there.
    folder = Path(tempfile.mkdtemp(prefix="paved-gcs-", dir=env.get("RUNNER_TEMP") or None))
    path = folder / "credentials.json"
    adc = {
        "type": "authorized_user",
        "token": token,
        "expiry": stamp(expiry),
        "refresh_token": "",
        "client_id": "",
        "client_secret": "",
    }
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    with os.fdopen(os.open(path, flags, 0o600), "w", encoding="utf-8") as out:
        json.dump(adc, out)
    return path
