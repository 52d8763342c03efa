"""Loopback stand-ins for the token services no test can reach: GitHub's OIDC token service,
Google's STS and IAM Credentials, Microsoft Entra ID and ACR's token exchange.

Each answers the documented request with the documented fields and refuses a request whose
token is not the one issued by the step before it, so a test proves the chain is passed
along. Every request is appended to a JSON-lines log for the test to read. AWS is not here:
moto emulates STS and ECR; nor is Blob Storage: Azurite emulates it, and reads the Entra
token given for it (`storage_jwt`).

    python fake_clouds.py --port N --password P --log FILE
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REQUEST_TOKEN = "runner-request-token"  # what the runner gives the job
FEDERATED = "google-federated-token"
ENTRA = "entra-access-token"


def github_token(audience: str) -> str:
    """The fake OIDC token for an audience."""
    return f"github-jwt.{audience}"


def storage_jwt(*, tenant: str) -> str:
    """An Entra access token for Blob Storage, as Azurite reads it (claims only: Azurite's
    `--oauth basic` checks issuer, audience and lifetime, not the signature)."""
    now = int(time.time())
    claims = {
        "aud": "https://storage.azure.com",
        "iss": f"https://sts.windows.net/{tenant}/",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "oid": "7f0c3a5e-0000-4000-8000-00000000a11c",
        "tid": tenant,
    }

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class Handler(BaseHTTPRequestHandler):
    """Routes by path prefix: /github, /google/sts, /google/iam, /entra, /acr."""

    password = ""
    log = Path()

    def do_GET(self) -> None:
        """GitHub's token service: GET ?api-version=2.0&audience=..."""
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self._record("GET", url.path, query)
        if url.path == "/github/moved":  # a redirect must not carry the bearer along
            self.send_response(302)
            self.send_header("Location", f"/github/token?{url.query}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if self._broken(url.path):
            return None
        if url.path != "/github/token":
            return self._answer(404, {"message": "not found"})
        if self.headers.get("Authorization") != f"bearer {REQUEST_TOKEN}":
            return self._answer(403, {"message": "bad request token"})
        return self._answer(200, {"count": 1, "value": github_token(query.get("audience", ""))})

    def do_POST(self) -> None:
        """The clouds' token endpoints."""
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length).decode()
        path = urllib.parse.urlsplit(self.path).path
        json_body = self.headers.get("Content-Type", "").startswith("application/json")
        form = json.loads(raw) if json_body else dict(urllib.parse.parse_qsl(raw))
        self._record("POST", path, form)
        if path == "/google/sts/v1/token":
            # The token's audience is the provider's https URL, STS's the same without scheme.
            expected = github_token("https:" + form.get("audience", ""))
            if form.get("subject_token") != expected:
                return self._answer(400, {"error": "invalid_grant", "error_description": "jwt"})
            return self._answer(200, {"access_token": FEDERATED, "token_type": "Bearer"})
        if path.startswith("/google/iam/v1/projects/-/serviceAccounts/"):
            if self.headers.get("Authorization") != f"Bearer {FEDERATED}":
                return self._answer(401, {"error": {"message": "unauthenticated"}})
            return self._answer(200, {"accessToken": self.password, "expireTime": "2099-01-01"})
        if path.endswith("/oauth2/v2.0/token") and path.startswith("/entra/"):
            if form.get("client_id") == "unknown-app":
                return self._answer(
                    400,
                    {
                        "error": "unauthorized_client",
                        "error_description": "AADSTS700016: app not found",
                    },
                )
            if form.get("client_assertion") != github_token("api://AzureADTokenExchange"):
                return self._answer(401, {"error": "invalid_client"})
            if form.get("scope") == "https://storage.azure.com/.default":
                access = storage_jwt(tenant=path.split("/")[2])
                return self._answer(200, {"access_token": access, "token_type": "Bearer"})
            return self._answer(200, {"access_token": ENTRA, "token_type": "Bearer"})
        if path == "/acr/oauth2/exchange":
            if form.get("access_token") != ENTRA:
                return self._answer(401, {"errors": [{"code": "UNAUTHORIZED"}]})
            return self._answer(200, {"refresh_token": self.password})
        return self._answer(404, {"message": "not found"})

    def _broken(self, path: str) -> bool:
        """Broken answers: /github/html (not JSON), /github/huge (8 MiB), /github/cut (the
        connection closes mid-body: IncompleteRead). False for any other path."""
        if path == "/github/html":
            body = b"<html>Service Unavailable</html>"
            length = len(body)
        elif path == "/github/huge":
            body = b'{"value": "' + b"x" * (8 * 1024 * 1024) + b'"}'
            length = len(body)
        elif path == "/github/cut":
            body, length = b'{"value": "eyJ', 4096
        else:
            return False
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        with contextlib.suppress(OSError):  # a client that stops reading a huge answer
            self.wfile.write(body)
        self.close_connection = True
        return True

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the JSON-lines log is the record."""

    def _record(self, method: str, path: str, fields: dict[str, str]) -> None:
        entry = {
            "method": method,
            "path": path,
            "fields": fields,
            "authorization": self.headers.get("Authorization", ""),
        }
        with self.log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    """Serve on 127.0.0.1 until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    Handler.password, Handler.log = args.password, args.log
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
