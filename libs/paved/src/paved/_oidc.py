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
`PAVED_GCP_IAMCREDENTIALS_URL`, `PAVED_ACR_URL`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

from paved._errors import PavedError

__all__ = [
    "CLOUDS",
    "AwsKeys",
    "Cloud",
    "Credentials",
    "cloud_credentials",
    "cloud_for_login",
    "cloud_of",
    "github_id_token",
    "sigv4_headers",
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
        r"\d{12}\.dkr\.ecr(?P<fips>-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?",
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
#: An AWS region (us-east-1, us-gov-west-1, cn-north-1, eu-central-2, ...).
AWS_REGION = r"[a-z]{2}(-[a-z]+)+-\d{1,2}"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
GCP_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
ACR_USER = "00000000-0000-0000-0000-000000000000"
_TIMEOUT = 30
#: A token service's answer is a few KiB; a larger one is refused, not read whole.
_MAX_ANSWER = 1024 * 1024


@dataclass(frozen=True)
class Credentials:
    """A user and a short-lived password for `docker login` / `buildah login`."""

    user: str
    password: str = ""

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=<hidden>)"


@dataclass(frozen=True)
class AwsKeys:
    """AWS session keys."""

    access_key: str
    secret_key: str
    session_token: str = ""

    def __repr__(self) -> str:
        return f"AwsKeys(access_key={self.access_key!r}, ...)"


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
    if found != cloud and host.split(":", maxsplit=1)[0] not in _LOOPBACK:
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
        return _aws(host, env)
    if cloud == "gcp":
        return _gcp(env)
    return _azure(host, env)


def github_id_token(audience: str, env: Mapping[str, str]) -> str:
    """The job's OIDC token for `audience`, from GitHub's token service."""
    url, bearer = env.get("ACTIONS_ID_TOKEN_REQUEST_URL"), env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not bearer:
        raise PavedError(
            "no OIDC token: ACTIONS_ID_TOKEN_REQUEST_URL is not set. In a workflow the job "
            "needs `permissions: id-token: write`; on a laptop log in with your cloud's CLI "
            "or set REGISTRY_PASSWORD"
        )
    _check_url(url, "ACTIONS_ID_TOKEN_REQUEST_URL")
    separator = "&" if "?" in url else "?"
    query = urllib.parse.urlencode({"audience": audience})
    answer = _json(
        "GitHub's OIDC token service",
        urllib.request.Request(
            f"{url}{separator}{query}", headers={"Authorization": f"bearer {bearer}"}
        ),
    )
    return _field(answer, "value", "GitHub's OIDC token service")


# --- AWS ---------------------------------------------------------------------------------


def _aws(host: str, env: Mapping[str, str]) -> Credentials:
    role_arn = env["PAVED_AWS_ROLE_ARN"]
    if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", role_arn):
        raise PavedError(f"PAVED_AWS_ROLE_ARN {role_arn!r} is not an IAM role ARN")
    # An ECR host names its region and FIPS-ness; an emulator on this machine does not.
    found = re.fullmatch(CLOUDS["aws"].pattern, host)
    region = found["region"] if found else env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise PavedError(f"no AWS region in {host}: set AWS_REGION")
    # The region becomes part of the STS and ECR host names: `x#` would send the token to x.
    if not re.fullmatch(AWS_REGION, region, flags=re.ASCII):
        raise PavedError(f"AWS region {region!r} is not a region name (e.g. eu-west-1)")
    sts, ecr = _aws_endpoints(region, env, fips=bool(found and found["fips"]))
    token = github_id_token("sts.amazonaws.com", env)
    keys = assume_role_with_web_identity(role_arn, token, sts, env)
    return ecr_authorization(keys, region, ecr)


def _aws_endpoints(region: str, env: Mapping[str, str], *, fips: bool) -> tuple[str, str]:
    """STS's and ECR's API endpoints for `region` (FIPS ones for a FIPS registry)."""
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    sts = f"https://sts-fips.{region}" if fips else f"https://sts.{region}"
    ecr = f"https://ecr-fips.{region}" if fips else f"https://api.ecr.{region}"
    return (
        _endpoint(env, "AWS_ENDPOINT_URL_STS", f"{sts}.{domain}"),
        _endpoint(env, "AWS_ENDPOINT_URL_ECR", f"{ecr}.{domain}"),
    )


def assume_role_with_web_identity(
    role_arn: str, token: str, endpoint: str, env: Mapping[str, str]
) -> AwsKeys:
    """STS AssumeRoleWithWebIdentity: session keys for `role_arn` (15 minutes)."""
    run = re.sub(r"[^\w+=,.@-]", "-", env.get("GITHUB_RUN_ID", "local"), flags=re.ASCII)
    body = urllib.parse.urlencode(
        {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": role_arn,
            "RoleSessionName": f"paved-{run}"[:64],
            "WebIdentityToken": token,
            "DurationSeconds": "900",
        }
    ).encode()
    request = urllib.request.Request(
        f"{endpoint}/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    xml = _call("AWS STS", request)
    namespace = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}
    try:
        found = ET.fromstring(xml).find(".//sts:Credentials", namespace)
    except ET.ParseError as exc:
        raise PavedError(f"AWS STS answered something that is not XML: {exc}") from exc
    values = (
        {
            name: found.findtext(f"sts:{name}", default="", namespaces=namespace)
            for name in ("AccessKeyId", "SecretAccessKey", "SessionToken")
        }
        if found is not None
        else {}
    )
    if not values or not all(values.values()):
        raise PavedError("AWS STS answered without credentials")
    return AwsKeys(values["AccessKeyId"], values["SecretAccessKey"], values["SessionToken"])


def ecr_authorization(keys: AwsKeys, region: str, endpoint: str) -> Credentials:
    """ECR GetAuthorizationToken with `keys` at `endpoint`: the registry user and password."""
    url = f"{endpoint}/"
    body = b"{}"
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
    }
    signed = sigv4_headers("POST", url, headers, body, keys=keys, region=region, service="ecr")
    answer = _json("AWS ECR", urllib.request.Request(url, data=body, headers=signed))
    data = answer.get("authorizationData") if isinstance(answer, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise PavedError("AWS ECR answered without authorizationData")
    try:
        decoded = base64.b64decode(str(data[0].get("authorizationToken", ""))).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise PavedError("AWS ECR's authorizationToken is not base64") from exc
    user, sep, password = decoded.partition(":")
    if not sep or not password:
        raise PavedError("AWS ECR's authorizationToken is not user:password")
    return Credentials(user, password)


def sigv4_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    keys: AwsKeys,
    region: str,
    service: str,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """`headers` plus the Signature Version 4 headers of the request."""
    now = now or dt.datetime.now(dt.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    parts = urllib.parse.urlsplit(url)
    signed = {**headers, "Host": parts.netloc, "X-Amz-Date": stamp}
    if keys.session_token:
        signed["X-Amz-Security-Token"] = keys.session_token
    canonical_headers = sorted((k.lower(), " ".join(v.split())) for k, v in signed.items())
    names = ";".join(name for name, _ in canonical_headers)
    query = "&".join(
        sorted(
            f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        )
    )
    canonical = "\n".join(
        [
            method,
            urllib.parse.quote(parts.path or "/", safe="/-_.~"),
            query,
            "".join(f"{name}:{value}\n" for name, value in canonical_headers),
            names,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{keys.secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={keys.access_key}/{scope}, "
        f"SignedHeaders={names}, Signature={signature}"
    )
    return signed


# --- Google Cloud ------------------------------------------------------------------------


def _gcp(env: Mapping[str, str]) -> Credentials:
    provider = env["PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER"].strip("/")
    pattern = r"projects/\d+/locations/global/workloadIdentityPools/[\w-]+/providers/[\w-]+"
    if not re.fullmatch(pattern, provider):
        raise PavedError(
            f"PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER {provider!r} is not a provider's name "
            "(projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<id>)"
        )
    sts = _endpoint(env, "PAVED_GCP_STS_URL", "https://sts.googleapis.com")
    iam = _endpoint(env, "PAVED_GCP_IAMCREDENTIALS_URL", "https://iamcredentials.googleapis.com")
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
    answer = _json("Google STS", urllib.request.Request(f"{sts}/v1/token", data=body))
    access = _field(answer, "access_token", "Google STS")
    account = env.get("PAVED_GCP_SERVICE_ACCOUNT")
    if account:
        quoted = urllib.parse.quote(account, safe="@.")
        request = urllib.request.Request(
            f"{iam}/v1/projects/-/serviceAccounts/{quoted}:generateAccessToken",
            data=json.dumps({"scope": [GCP_SCOPE], "lifetime": "1800s"}).encode(),
            headers={"Authorization": f"Bearer {access}", "Content-Type": "application/json"},
        )
        access = _field(_json("Google IAM Credentials", request), "accessToken", "Google IAM")
    return Credentials("oauth2accesstoken", access)


# --- Azure -------------------------------------------------------------------------------


def _azure(host: str, env: Mapping[str, str]) -> Credentials:
    tenant, client = env["PAVED_AZURE_TENANT_ID"], env["PAVED_AZURE_CLIENT_ID"]
    for name, value in (("PAVED_AZURE_TENANT_ID", tenant), ("PAVED_AZURE_CLIENT_ID", client)):
        if not re.fullmatch(r"[\w.-]+", value):
            raise PavedError(f"{name} {value!r} is not a tenant or client ID")
    authority = _endpoint(env, "AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com")
    registry = _endpoint(env, "PAVED_ACR_URL", f"https://{host}")
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
    access = _field(_json("Microsoft Entra ID", request), "access_token", "Microsoft Entra ID")
    body = urllib.parse.urlencode(
        {"grant_type": "access_token", "service": host, "tenant": tenant, "access_token": access}
    ).encode()
    request = urllib.request.Request(f"{registry}/oauth2/exchange", data=body)
    refresh = _field(_json("Azure Container Registry", request), "refresh_token", "ACR")
    return Credentials(ACR_USER, refresh)


# --- HTTP --------------------------------------------------------------------------------


def _endpoint(env: Mapping[str, str], variable: str, default: str) -> str:
    url = (env.get(variable) or default).rstrip("/")
    _check_url(url, variable)
    return url


def _check_url(url: str, name: str) -> None:
    """Tokens travel over https only (plain http to this machine, for emulators)."""
    parts = urllib.parse.urlsplit(url)
    loopback = parts.hostname in _LOOPBACK
    if not parts.hostname or not (
        parts.scheme == "https" or (parts.scheme, loopback) == ("http", True)
    ):
        raise PavedError(f"{name} {url!r}: tokens go to https URLs only")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the Authorization header to another host: refuse it."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _call(service: str, request: urllib.request.Request) -> bytes:
    """The body of the answer; a refusal, a broken answer or a huge one is a PavedError."""
    try:
        with _OPENER.open(request, timeout=_TIMEOUT) as response:
            body = bytes(response.read(_MAX_ANSWER + 1))
            missing = response.length  # what Content-Length announced but never came
            if missing and len(body) <= _MAX_ANSWER:
                raise http.client.IncompleteRead(body, missing)
    except urllib.error.HTTPError as exc:
        detail = exc.read(_MAX_ANSWER).decode(errors="replace").strip()[:500]
        raise PavedError(f"{service} refused ({exc.code}): {detail or exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        # HTTPException: a connection cut mid-answer (IncompleteRead), a malformed status line.
        reason = f"{type(exc).__name__}: {exc}"
        raise PavedError(f"{service} did not answer at {request.full_url}: {reason}") from exc
    if len(body) > _MAX_ANSWER:
        raise PavedError(f"{service} answered more than {_MAX_ANSWER // 1024} KiB: not a token")
    return body


def _json(service: str, request: urllib.request.Request) -> object:
    try:
        return json.loads(_call(service, request))
    except ValueError as exc:
        raise PavedError(f"{service} answered something that is not JSON") from exc


def _field(answer: object, name: str, service: str) -> str:
    value = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value:
        raise PavedError(f"{service} answered without {name}")
    return value
