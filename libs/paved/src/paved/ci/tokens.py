"""Short-lived credentials over HTTPS, and the one HTTP helper the token services use.

The clouds' token services (paved.ci.aws, paved.ci.gcp, paved.ci.azure) give
`Credentials`; `github_id_token` is the CI job's own OIDC token, which they take.

Every call has a timeout, follows no redirect, refuses an answer over 1 MiB and a URL that
is not https (or http to this machine), and says which service failed and how.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from paved._errors import PavedError, ServiceRefusal
from paved.ci.actions import id_token_service

__all__ = [
    "LOOPBACK",
    "Credentials",
    "call",
    "check_url",
    "endpoint",
    "field",
    "github_id_token",
    "json_answer",
    "stamp",
]

#: The hosts of this machine: plain http goes to these only (emulators).
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TIMEOUT = 30
#: A token service's answer is a few KiB; a larger one is refused, not read whole.
MAX_ANSWER = 1024 * 1024


@dataclass(frozen=True)
class Credentials:
    """A user and a short-lived password for `docker login` / `buildah login`."""

    user: str
    password: str = ""

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=<hidden>)"


def github_id_token(audience: str, env: Mapping[str, str]) -> str:
    """The job's OIDC token for `audience`, from GitHub's token service."""
    service = id_token_service(env)
    if service is None:
        raise PavedError(
            "no OIDC token: ACTIONS_ID_TOKEN_REQUEST_URL is not set. In a workflow the job "
            "needs `permissions: id-token: write`; on a laptop log in with your cloud's CLI "
            "or set REGISTRY_PASSWORD"
        )
    url, bearer = service
    check_url(url, "ACTIONS_ID_TOKEN_REQUEST_URL")
    separator = "&" if "?" in url else "?"
    query = urllib.parse.urlencode({"audience": audience})
    answer = json_answer(
        "GitHub's OIDC token service",
        urllib.request.Request(
            f"{url}{separator}{query}", headers={"Authorization": f"bearer {bearer}"}
        ),
    )
    return field(answer, "value", "GitHub's OIDC token service")


def endpoint(env: Mapping[str, str], variable: str, default: str) -> str:
    """The service URL `variable` names in `env` (else `default`), checked, no trailing `/`."""
    url = (env.get(variable) or default).rstrip("/")
    check_url(url, variable)
    return url


def check_url(url: str, name: str) -> None:
    """Tokens travel over https only (plain http to this machine, for emulators)."""
    parts = urllib.parse.urlsplit(url)
    loopback = parts.hostname in LOOPBACK
    if not parts.hostname or not (
        parts.scheme == "https" or (parts.scheme, loopback) == ("http", True)
    ):
        raise PavedError(f"{name} {url!r}: tokens go to https URLs only")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the Authorization header to another host: refuse it."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirect)


def call(service: str, request: urllib.request.Request) -> bytes:
    """The body of the answer; a refusal is a ServiceRefusal, any other failure a PavedError."""
    try:
        with OPENER.open(request, timeout=TIMEOUT) as response:
            body = bytes(response.read(MAX_ANSWER + 1))
            missing = response.length  # what Content-Length announced but never came
            if missing and len(body) <= MAX_ANSWER:
                raise http.client.IncompleteRead(body, missing)
    except urllib.error.HTTPError as exc:
        detail = exc.read(MAX_ANSWER).decode(errors="replace").strip()[:500]
        raise ServiceRefusal(service, exc.code, detail or str(exc.reason)) from exc
    except (OSError, http.client.HTTPException) as exc:
        # HTTPException: a connection cut mid-answer (IncompleteRead), a malformed status line.
        reason = f"{type(exc).__name__}: {exc}"
        raise PavedError(f"{service} did not answer at {request.full_url}: {reason}") from exc
    if len(body) > MAX_ANSWER:
        raise PavedError(f"{service} answered more than {MAX_ANSWER // 1024} KiB: not a token")
    return body


def json_answer(service: str, request: urllib.request.Request) -> object:
    """`request`'s answer from `service`, read as JSON; a PavedError if it is not JSON."""
    try:
        return json.loads(call(service, request))
    except ValueError as exc:
        raise PavedError(f"{service} answered something that is not JSON") from exc


def field(answer: object, name: str, service: str) -> str:
    """The non-empty string `name` of a JSON object from `service`; a PavedError if absent."""
    value = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value:
        raise PavedError(f"{service} answered without {name}")
    return value


def stamp(moment: dt.datetime) -> str:
    """`moment` (UTC) as the token services write a time: `2026-12-07T21:06:56Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
