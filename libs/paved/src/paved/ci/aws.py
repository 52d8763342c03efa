"""AWS: the job's OIDC token for STS session keys, for ECR's registry password and for S3.

STS `AssumeRoleWithWebIdentity` (unsigned) gives session keys, and ECR's
`GetAuthorizationToken` (signed with Signature Version 4) the registry password; the keys
alone (`storage_keys`) reach the repo's data on S3 (the DVC remote, the prediction log). The
endpoints are the region's, or the AWS SDKs' `AWS_ENDPOINT_URL_STS` and
`AWS_ENDPOINT_URL_ECR`.
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
from paved.ci.actions import run_id
from paved.ci.tokens import (
    Credentials,
    call,
    endpoint,
    github_id_token,
    json_answer,
)

__all__ = [
    "AWS_REGION",
    "ECR_HOST",
    "AwsKeys",
    "aws_credentials",
    "sigv4_headers",
    "storage_keys",
]

#: An ECR registry host (named groups: whether it is a FIPS endpoint, and its region).
ECR_HOST = r"\d{12}\.dkr\.ecr(?P<fips>-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?"

#: An AWS region (us-east-1, us-gov-west-1, cn-north-1, eu-central-2, ...).
AWS_REGION = r"[a-z]{2}(-[a-z]+)+-\d{1,2}"


@dataclass(frozen=True)
class AwsKeys:
    """AWS session keys."""

    access_key: str
    secret_key: str
    session_token: str = ""

    def __repr__(self) -> str:
        return f"AwsKeys(access_key={self.access_key!r}, ...)"


def aws_credentials(host: str, env: Mapping[str, str]) -> Credentials:
    """Registry credentials of the ECR `host` for the role PAVED_AWS_ROLE_ARN names."""
    role_arn = _role_arn(env)
    # An ECR host names its region and FIPS-ness; an emulator on this machine does not.
    found = re.fullmatch(ECR_HOST, host)
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


def storage_keys(env: Mapping[str, str]) -> AwsKeys:
    """Session keys (an hour) of the role PAVED_AWS_ROLE_ARN names, for the repo's data on S3.

    The job's OIDC token is exchanged at STS (AWS_REGION's endpoint, or
    AWS_ENDPOINT_URL_STS); no stored key is read. The role should reach the data bucket and
    nothing else: the job that uses the keys runs the repo's code.
    """
    role_arn = _role_arn(env)
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    if not re.fullmatch(AWS_REGION, region, flags=re.ASCII):
        raise PavedError(f"AWS region {region!r} is not a region name (e.g. eu-west-1)")
    sts, _ = _aws_endpoints(region, env, fips=False)
    token = github_id_token("sts.amazonaws.com", env)
    return assume_role_with_web_identity(role_arn, token, sts, env, seconds=3600)


def _role_arn(env: Mapping[str, str]) -> str:
    role_arn = env.get("PAVED_AWS_ROLE_ARN", "")
    if not role_arn:
        raise PavedError("set PAVED_AWS_ROLE_ARN to the IAM role the job's OIDC token assumes")
    if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", role_arn):
        raise PavedError(f"PAVED_AWS_ROLE_ARN {role_arn!r} is not an IAM role ARN")
    return role_arn


def _aws_endpoints(region: str, env: Mapping[str, str], *, fips: bool) -> tuple[str, str]:
    """STS's and ECR's API endpoints for `region` (FIPS ones for a FIPS registry)."""
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    sts = f"https://sts-fips.{region}" if fips else f"https://sts.{region}"
    ecr = f"https://ecr-fips.{region}" if fips else f"https://api.ecr.{region}"
    return (
        endpoint(env, "AWS_ENDPOINT_URL_STS", f"{sts}.{domain}"),
        endpoint(env, "AWS_ENDPOINT_URL_ECR", f"{ecr}.{domain}"),
    )


def assume_role_with_web_identity(
    role_arn: str, token: str, endpoint: str, env: Mapping[str, str], *, seconds: int = 900
) -> AwsKeys:
    """STS AssumeRoleWithWebIdentity: session keys for `role_arn` (`seconds`, 15 minutes)."""
    run = re.sub(r"[^\w+=,.@-]", "-", run_id(env) or "local", flags=re.ASCII)
    body = urllib.parse.urlencode(
        {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": role_arn,
            "RoleSessionName": f"paved-{run}"[:64],
            "WebIdentityToken": token,
            "DurationSeconds": str(seconds),
        }
    ).encode()
    request = urllib.request.Request(
        f"{endpoint}/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    xml = call("AWS STS", request)
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
    answer = json_answer("AWS ECR", urllib.request.Request(url, data=body, headers=signed))
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
