"""Azure Container Registry: the job's OIDC token for a registry refresh token.

Microsoft Entra ID takes the token as a client assertion and gives an access token, which
the registry's `/oauth2/exchange` turns into a refresh token. Endpoints: the Azure SDKs'
`AZURE_AUTHORITY_HOST`, and `PAVED_ACR_URL` for emulators.
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from collections.abc import Mapping

from paved._errors import PavedError
from paved.ci.tokens import Credentials, endpoint, field, github_id_token, json_answer

__all__ = ["ACR_USER", "azure_credentials"]

ACR_USER = "00000000-0000-0000-0000-000000000000"


def azure_credentials(host: str, env: Mapping[str, str]) -> Credentials:
    """ACR `host`'s credentials for the app PAVED_AZURE_CLIENT_ID (tenant PAVED_AZURE_TENANT_ID)."""
    tenant, client = env["PAVED_AZURE_TENANT_ID"], env["PAVED_AZURE_CLIENT_ID"]
    for name, value in (("PAVED_AZURE_TENANT_ID", tenant), ("PAVED_AZURE_CLIENT_ID", client)):
        if not re.fullmatch(r"[\w.-]+", value):
            raise PavedError(f"{name} {value!r} is not a tenant or client ID")
    authority = endpoint(env, "AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com")
    registry = endpoint(env, "PAVED_ACR_URL", f"https://{host}")
    token = github_id_token("api://AzureADTokenExchange", env)
    body = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": client,
            # The registry's own audience: accepted also where ARM tokens are turned off.
            "scope": "https://containerregistry.azure.net/.default",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token,
        }
    ).encode()
    request = urllib.request.Request(f"{authority}/{tenant}/oauth2/v2.0/token", data=body)
    access = field(json_answer("Microsoft Entra ID", request), "access_token", "Microsoft Entra ID")
    body = urllib.parse.urlencode(
        {"grant_type": "access_token", "service": host, "tenant": tenant, "access_token": access}
    ).encode()
    request = urllib.request.Request(f"{registry}/oauth2/exchange", data=body)
    refresh = field(json_answer("Azure Container Registry", request), "refresh_token", "ACR")
    return Credentials(ACR_USER, refresh)
