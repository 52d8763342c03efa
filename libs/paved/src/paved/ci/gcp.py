"""Google: the job's OIDC token for an access token to Artifact Registry or Cloud Storage.

The Security Token Service exchanges the token for a federated access token; with a
service account, IAM Credentials impersonates it. Endpoints: `PAVED_GCP_STS_URL` and
`PAVED_GCP_IAMCREDENTIALS_URL`, for emulators.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Mapping

from paved._errors import PavedError
from paved.ci.tokens import Credentials, endpoint, field, github_id_token, json_answer

__all__ = ["GCP_SCOPE", "STORAGE_SCOPE", "gcp_credentials", "storage_token"]

GCP_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: Cloud Storage's objects, read and written: all a storage token can do.
STORAGE_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"


def gcp_credentials(env: Mapping[str, str]) -> Credentials:
    """Artifact Registry credentials through the provider PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER."""
    token, _ = _access_token(env, GCP_SCOPE, seconds=1800)
    return Credentials("oauth2accesstoken", token)


def storage_token(env: Mapping[str, str]) -> tuple[str, dt.datetime]:
    """An hour's Cloud Storage token (PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER), and its expiry.

    Its scope is objects only (read and write); which buckets, the identity's IAM roles
    say: give PAVED_GCP_SERVICE_ACCOUNT (or the pool's principal) the data bucket only.
    """
    return _access_token(env, STORAGE_SCOPE, seconds=3600)


def _access_token(env: Mapping[str, str], scope: str, *, seconds: int) -> tuple[str, dt.datetime]:
    """An access token for `scope`, and when it expires (as the service says, else `seconds`).

    Federated, or the service account's if PAVED_GCP_SERVICE_ACCOUNT names one.
    """
    asked = dt.datetime.now(dt.UTC)
    provider = env.get("PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER", "").strip("/")
    if not provider:
        raise PavedError(
            "set PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER to the provider the job's OIDC token is "
            "exchanged at"
        )
    pattern = r"projects/\d+/locations/global/workloadIdentityPools/[\w-]+/providers/[\w-]+"
    if not re.fullmatch(pattern, provider):
        raise PavedError(
            f"PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER {provider!r} is not a provider's name "
            "(projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<id>)"
        )
    sts = endpoint(env, "PAVED_GCP_STS_URL", "https://sts.googleapis.com")
    iam = endpoint(env, "PAVED_GCP_IAMCREDENTIALS_URL", "https://iamcredentials.googleapis.com")
    token = github_id_token(f"https://iam.googleapis.com/{provider}", env)
    account = env.get("PAVED_GCP_SERVICE_ACCOUNT")
    body = urllib.parse.urlencode(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "audience": f"//iam.googleapis.com/{provider}",
            # Impersonating an account needs IAM Credentials: the federated token's scope.
            "scope": GCP_SCOPE if account else scope,
            "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "subject_token": token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        }
    ).encode()
    answer = json_answer("Google STS", urllib.request.Request(f"{sts}/v1/token", data=body))
    access = field(answer, "access_token", "Google STS")
    lifetime = answer.get("expires_in") if isinstance(answer, dict) else None
    expiry = asked + dt.timedelta(seconds=lifetime if isinstance(lifetime, int) else seconds)
    if account:
        quoted = urllib.parse.quote(account, safe="@.")
        request = urllib.request.Request(
            f"{iam}/v1/projects/-/serviceAccounts/{quoted}:generateAccessToken",
            data=json.dumps({"scope": [scope], "lifetime": f"{seconds}s"}).encode(),
            headers={"Authorization": f"Bearer {access}", "Content-Type": "application/json"},
        )
        answer = json_answer("Google IAM Credentials", request)
        access = field(answer, "accessToken", "Google IAM")
        expiry = _expiry(answer, default=asked + dt.timedelta(seconds=seconds))
    return access, expiry


def _expiry(answer: object, *, default: dt.datetime) -> dt.datetime:
    """IAM Credentials' `expireTime` (RFC 3339), or `default` when it is absent or unread."""
    stamp = answer.get("expireTime") if isinstance(answer, dict) else None
    try:
        return dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).astimezone(dt.UTC)
    except ValueError:
        return default
