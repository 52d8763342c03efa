"""Google Artifact Registry: the job's OIDC token for a federated access token.

The Security Token Service exchanges the token for a federated access token; with a
service account, IAM Credentials impersonates it. Endpoints: `PAVED_GCP_STS_URL` and
`PAVED_GCP_IAMCREDENTIALS_URL`, for emulators.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Mapping

from paved._errors import PavedError
from paved.ci.tokens import Credentials, endpoint, field, github_id_token, json_answer

__all__ = ["GCP_SCOPE", "gcp_credentials"]

GCP_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def gcp_credentials(env: Mapping[str, str]) -> Credentials:
    """Artifact Registry credentials through the provider PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER."""
    provider = env["PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER"].strip("/")
    pattern = r"projects/\d+/locations/global/workloadIdentityPools/[\w-]+/providers/[\w-]+"
    if not re.fullmatch(pattern, provider):
        raise PavedError(
            f"PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER {provider!r} is not a provider's name "
            "(projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<id>)"
        )
    sts = endpoint(env, "PAVED_GCP_STS_URL", "https://sts.googleapis.com")
    iam = endpoint(env, "PAVED_GCP_IAMCREDENTIALS_URL", "https://iamcredentials.googleapis.com")
    token = github_id_token(f"https://iam.googleapis.com/{provider}", env)
    body = urllib.parse.urlencode(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "audience": f"//iam.googleapis.com/{provider}",
            "scope": GCP_SCOPE,
            "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "subject_token": token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        }
    ).encode()
    answer = json_answer("Google STS", urllib.request.Request(f"{sts}/v1/token", data=body))
    access = field(answer, "access_token", "Google STS")
    account = env.get("PAVED_GCP_SERVICE_ACCOUNT")
    if account:
        quoted = urllib.parse.quote(account, safe="@.")
        request = urllib.request.Request(
            f"{iam}/v1/projects/-/serviceAccounts/{quoted}:generateAccessToken",
            data=json.dumps({"scope": [GCP_SCOPE], "lifetime": "1800s"}).encode(),
            headers={"Authorization": f"Bearer {access}", "Content-Type": "application/json"},
        )
        access = field(json_answer("Google IAM Credentials", request), "accessToken", "Google IAM")
    return Credentials("oauth2accesstoken", access)
