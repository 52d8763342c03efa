"""Azure: the job's OIDC token for an ACR refresh token, or for a container's SAS.

Microsoft Entra ID takes the token as a client assertion and gives an access token. For the
registry, its `/oauth2/exchange` turns that into a refresh token. For Blob Storage, the
account gives a user delegation key, which signs a shared access signature (SAS) for one
container, valid for an hour: the repo's data and prediction log are reached with that, never
with an account key. Endpoints: the Azure SDKs' `AZURE_AUTHORITY_HOST`, and `PAVED_ACR_URL`
and `PAVED_AZURE_BLOB_URL` for emulators.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

from paved._errors import PavedError
from paved.ci.tokens import (
    Credentials,
    call,
    endpoint,
    field,
    github_id_token,
    json_answer,
    stamp,
)

__all__ = ["ACR_USER", "AzureStorage", "azure_credentials", "storage_sas"]

ACR_USER = "00000000-0000-0000-0000-000000000000"
#: The Blob service version the delegation key is asked with and the SAS is signed for.
BLOB_VERSION = "2022-11-02"
#: What the SAS allows in its container: read, add, create, write, delete, list.
SAS_PERMISSIONS = "racwdl"


@dataclass(frozen=True)
class AzureStorage:
    """A container's shared access signature, and the connection string that carries it."""

    account: str
    container: str
    sas: str
    expiry: str
    blob_url: str

    @property
    def connection_string(self) -> str:
        """What DVC's azure remote and adlfs read from AZURE_STORAGE_CONNECTION_STRING."""
        return f"BlobEndpoint={self.blob_url};SharedAccessSignature={self.sas}"

    def __repr__(self) -> str:
        return f"AzureStorage(account={self.account!r}, container={self.container!r}, ...)"


def azure_credentials(host: str, env: Mapping[str, str]) -> Credentials:
    """ACR `host`'s credentials for the app PAVED_AZURE_CLIENT_ID (tenant PAVED_AZURE_TENANT_ID)."""
    tenant = _tenant(env)
    registry = endpoint(env, "PAVED_ACR_URL", f"https://{host}")
    # The registry's own audience: accepted also where ARM tokens are turned off.
    access = _entra_token(env, "https://containerregistry.azure.net/.default")
    body = urllib.parse.urlencode(
        {"grant_type": "access_token", "service": host, "tenant": tenant, "access_token": access}
    ).encode()
    request = urllib.request.Request(f"{registry}/oauth2/exchange", data=body)
    refresh = field(json_answer("Azure Container Registry", request), "refresh_token", "ACR")
    return Credentials(ACR_USER, refresh)


def storage_sas(env: Mapping[str, str], *, account: str, container: str) -> AzureStorage:
    """An hour's SAS for `container` of the storage `account`, for the app PAVED_AZURE_CLIENT_ID.

    The app needs a data role on the container (Storage Blob Data Contributor, or Reader for
    a job that only reads) and the account-level Storage Blob Delegator to be given the key.
    The SAS can reach that one container, nothing else of the account.
    """
    if not re.fullmatch(r"[a-z0-9]{3,24}", account):
        raise PavedError(f"Azure storage account {account!r} is not an account name")
    if not re.fullmatch(r"[a-z0-9](-?[a-z0-9])+", container) or len(container) > 63:
        raise PavedError(f"Azure container {container!r} is not a container name")
    blob = endpoint(env, "PAVED_AZURE_BLOB_URL", f"https://{account}.blob.core.windows.net")
    access = _entra_token(env, "https://storage.azure.com/.default")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start, expiry = stamp(now - dt.timedelta(minutes=5)), stamp(now + dt.timedelta(hours=1))
    request = urllib.request.Request(
        f"{blob}/?restype=service&comp=userdelegationkey",
        data=(
            f'<?xml version="1.0" encoding="utf-8"?><KeyInfo><Start>{start}</Start>'
            f"<Expiry>{expiry}</Expiry></KeyInfo>"
        ).encode(),
        headers={
            "Authorization": f"Bearer {access}",
            "x-ms-version": BLOB_VERSION,
            "Content-Type": "application/xml",
        },
    )
    key = _delegation_key(call("Azure Blob Storage", request))
    sas = {
        "sp": SAS_PERMISSIONS,
        "st": start,
        "se": expiry,
        "skoid": key["SignedOid"],
        "sktid": key["SignedTid"],
        "skt": key["SignedStart"],
        "ske": key["SignedExpiry"],
        "sks": key["SignedService"],
        "skv": key["SignedVersion"],
        "spr": "https" if blob.startswith("https:") else "https,http",
        "sv": BLOB_VERSION,
        "sr": "c",
    }
    sas["sig"] = _signature(sas, account, container, key["Value"])
    return AzureStorage(account, container, urllib.parse.urlencode(sas), expiry, blob)


def _signature(sas: Mapping[str, str], account: str, container: str, key: str) -> str:
    """A container SAS's signature with a user delegation key (service version 2020-12-06+)."""
    fields = [
        sas["sp"], sas["st"], sas["se"], f"/blob/{account}/{container}",
        sas["skoid"], sas["sktid"], sas["skt"], sas["ske"], sas["sks"], sas["skv"],
        "", "", "",  # no authorized or unauthorized user object, no correlation ID
        "", sas["spr"], sas["sv"], sas["sr"],  # any IP
        "", "", "", "", "", "", "",  # no snapshot, scope, or response headers
    ]  # fmt: skip
    try:
        secret = base64.b64decode(key, validate=True)
    except ValueError as exc:
        raise PavedError("Azure Blob Storage answered a delegation key that is not base64") from exc
    digest = hmac.new(secret, "\n".join(fields).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _delegation_key(body: bytes) -> dict[str, str]:
    """The fields of a `UserDelegationKey` answer; a PavedError when one is missing."""
    names = ["SignedOid", "SignedTid", "SignedStart", "SignedExpiry", "SignedService"]
    names += ["SignedVersion", "Value"]
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise PavedError("Azure Blob Storage answered a delegation key that is not XML") from exc
    key = {name: (root.findtext(name) or "").strip() for name in names}
    missing = [name for name, value in key.items() if not value]
    if root.tag != "UserDelegationKey" or missing:
        raise PavedError(f"Azure Blob Storage answered a delegation key without {missing}")
    return key


def _tenant(env: Mapping[str, str]) -> str:
    tenant, client = env.get("PAVED_AZURE_TENANT_ID", ""), env.get("PAVED_AZURE_CLIENT_ID", "")
    for name, value in (("PAVED_AZURE_TENANT_ID", tenant), ("PAVED_AZURE_CLIENT_ID", client)):
        if not value:
            raise PavedError(f"set {name}: the app registration the job's OIDC token signs in as")
        if not re.fullmatch(r"[\w.-]+", value):
            raise PavedError(f"{name} {value!r} is not a tenant or client ID")
    return tenant


def _entra_token(env: Mapping[str, str], scope: str) -> str:
    """An Entra ID access token for `scope`, with the job's OIDC token as client assertion."""
    tenant, client = _tenant(env), env["PAVED_AZURE_CLIENT_ID"]
    authority = endpoint(env, "AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com")
    token = github_id_token("api://AzureADTokenExchange", env)
    body = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": client,
            "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token,
        }
    ).encode()
    request = urllib.request.Request(f"{authority}/{tenant}/oauth2/v2.0/token", data=body)
    return field(json_answer("Microsoft Entra ID", request), "access_token", "Microsoft Entra ID")
