"""The few GitHub REST calls the fleet makes: list repos, read a file, find a pull request.

Reads only, with the token from the environment; every answer is checked.

The API's base URL is `PAVED_GITHUB_API` (default https://api.github.com, or a GitHub
Enterprise `https://host/api/v3`); the token is `PAVED_GITHUB_TOKEN`, else `GITHUB_TOKEN`.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paved._credentials import GITHUB_API, github_token
from paved._errors import PavedError, ServiceRefusal

__all__ = ["GitHub", "GitHubRepo", "PullRequests"]

_TIMEOUT = 30
_MAX_BYTES = 16 << 20
#: Writes are spaced at least this far apart (GitHub's secondary rate limits), across threads.
WRITE_INTERVAL = 1.0
_WRITES = threading.Lock()
_last_write = [0.0]


@dataclass(frozen=True)
class GitHubRepo:
    """One repository of an organisation, as the API lists it."""

    full_name: str
    clone_url: str
    default_branch: str


class GitHub:
    """A reading client for one API base URL and token."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.api = (env.get("PAVED_GITHUB_API") or GITHUB_API).rstrip("/")
        self.token = github_token(env)
        parts = urllib.parse.urlsplit(self.api)
        loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
        if parts.scheme != "https" and not loopback:
            raise PavedError(f"PAVED_GITHUB_API {self.api!r}: only https (or loopback) is used")

    def org_repos(self, org: str) -> list[GitHubRepo]:
        """Every repository of `org` that is not archived, by page of 100."""
        if not self.token:
            raise PavedError(
                f"github:{org} needs a token: set PAVED_GITHUB_TOKEN (or GITHUB_TOKEN) to one "
                "that can read the organisation's repositories"
            )
        repos: list[GitHubRepo] = []
        page = 1
        while True:
            answer = self.get(f"/orgs/{org}/repos", per_page="100", page=str(page))
            if not isinstance(answer, list):
                raise PavedError(f"GitHub listed no repositories for {org}: {str(answer)[:200]}")
            for item in answer:
                if isinstance(item, dict) and not item.get("archived"):
                    repos.append(
                        GitHubRepo(
                            full_name=str(item["full_name"]),
                            clone_url=str(item["clone_url"]),
                            default_branch=str(item.get("default_branch") or "main"),
                        )
                    )
            if len(answer) < 100:
                return repos
            page += 1

    def file(self, full_name: str, path: str, ref: str) -> str | None:
        """The text of `path` at `ref`, or None when the repository has no such file."""
        answer = self.get(f"/repos/{full_name}/contents/{path}", ref=ref, missing_ok=True)
        if answer is None:
            return None
        if not isinstance(answer, dict) or answer.get("encoding") != "base64":
            raise PavedError(f"GitHub answered {full_name}:{path} without base64 content")
        return base64.b64decode(str(answer.get("content", ""))).decode("utf-8")

    def open_pull(self, full_name: str, branch: str) -> dict[str, Any] | None:
        """The open pull request from `branch` of the same repository, if there is one."""
        owner = full_name.split("/", 1)[0]
        answer = self.get(f"/repos/{full_name}/pulls", head=f"{owner}:{branch}", state="open")
        if isinstance(answer, list) and answer and isinstance(answer[0], dict):
            return answer[0]
        return None

    def write(self, method: str, path: str, payload: dict[str, Any]) -> Any:
        """POST or PATCH `payload`, through the one limiter: spaced, `Retry-After` honoured."""
        data = json.dumps(payload).encode()
        for _attempt in range(4):
            with _WRITES:
                wait = _last_write[0] + WRITE_INTERVAL - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    return self._call(path, method=method, data=data)
                except _RetryAfter as exc:
                    time.sleep(exc.seconds)
                finally:
                    _last_write[0] = time.monotonic()
        raise PavedError(f"GitHub {method} {path}: still rate limited after 4 attempts")

    def get(self, path: str, *, missing_ok: bool = False, **query: str) -> Any:
        """GET `path` (JSON); a 404 is None when `missing_ok`, any other failure a PavedError."""
        url = path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        try:
            return self._call(url)
        except _NotFound:
            if missing_ok:
                return None
            raise ServiceRefusal(f"GitHub {path}", 404, "not found") from None
        except _RetryAfter as exc:
            raise PavedError(f"GitHub {path}: rate limited for {exc.seconds:.0f} s") from None

    def _call(self, path: str, *, method: str = "GET", data: bytes | None = None) -> Any:
        url = f"{self.api}{path}"
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "paved",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with _OPENER.open(request, timeout=_TIMEOUT) as answer:
                body = answer.read(_MAX_BYTES + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise _NotFound from exc
            retry = exc.headers.get("Retry-After", "") if exc.headers else ""
            if exc.code in {403, 429} and retry.isdigit():
                raise _RetryAfter(min(float(retry), 120.0)) from exc
            detail = exc.read(2000).decode("utf-8", "replace").strip()
            raise ServiceRefusal(
                f"GitHub {path}", exc.code, detail[:200] or str(exc.reason)
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise PavedError(f"GitHub {path}: {exc}") from exc
        if len(body) > _MAX_BYTES:
            raise PavedError(f"GitHub {path}: the answer is over {_MAX_BYTES} bytes")
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise PavedError(f"GitHub {path}: the answer is not JSON") from exc


class PullRequests:
    """Opens or updates pull requests, at most `cap` open at once across the run."""

    def __init__(self, cap: int | None) -> None:
        self.cap = cap
        self.opened = 0
        self.lock = threading.Lock()

    def open(
        self,
        github: GitHub,
        repo: str,
        branch: str,
        base: str,
        title: str,
        body: str,
        *,
        keep: bool = False,
    ) -> str:
        """The pull request from `branch`: updated (unless `keep`), or opened if under the cap."""
        existing = github.open_pull(repo, branch)
        if existing:
            if not keep:
                path = f"/repos/{repo}/pulls/{existing['number']}"
                github.write("PATCH", path, {"title": title, "body": body})
            return str(existing.get("html_url", ""))
        with self.lock:
            if self.cap is not None and self.opened >= self.cap:
                return f"not opened: {self.cap} update pull requests are open (--max-open-prs)"
            self.opened += 1
        payload = {"title": title, "head": branch, "base": base, "body": body}
        answer = github.write("POST", f"/repos/{repo}/pulls", payload)
        return str(answer.get("html_url", "")) if isinstance(answer, dict) else ""


class _SameHostAuthorization(urllib.request.HTTPRedirectHandler):
    """Redirects followed as urllib does, but the token goes to the same host only.

    urllib copies every header onto the redirected request: a redirect to another host (or
    from https to http) would hand it the token. As `requests` does, the Authorization header
    is dropped then, and kept for a redirect on the same host (a renamed repository).
    """

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            before, after = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
            moved = (before.hostname, before.port) != (after.hostname, after.port)
            if moved or (before.scheme == "https" and after.scheme != "https"):
                new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_SameHostAuthorization)


class _NotFound(Exception):
    """A 404."""


class _RetryAfter(Exception):
    """A 403/429 that says when to try again."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds
