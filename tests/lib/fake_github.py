"""A loopback stand-in for the few GitHub REST endpoints the fleet calls.

    python fake_github.py --port N --state FILE --log FILE

The state file (JSON) holds the token, the organisation's repositories (each with the bare
git repository standing in for it) and the pull requests; the stand-in answers from it and
writes pull requests back to it, so a test can read what was opened. Every request is
appended to the JSON-lines log. Endpoints:

    GET   /orgs/{org}/repos?per_page&page
    GET   /repos/{owner}/{repo}/contents/{path}?ref=
    GET   /repos/{owner}/{repo}/pulls?head=owner:branch&state=open
    POST  /repos/{owner}/{repo}/pulls
    PATCH /repos/{owner}/{repo}/pulls/{number}
    GET   /repos/{owner}/{repo}/issues?state=open&labels=name
    POST  /repos/{owner}/{repo}/issues
    PATCH /repos/{owner}/{repo}/issues/{number}
    POST  /repos/{owner}/{repo}/issues/{number}/comments

and, without a token, a chat's incoming webhook: POST /hooks/{name} (kept in `webhooks`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    """Answers from the state file; refuses a request without the state's token."""

    state_file = Path()
    log = Path()

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if not self._authorised("GET", url.path, query):
            return
        state = self._state()
        parts = url.path.strip("/").split("/")
        if parts[:1] == ["orgs"] and parts[2:] == ["repos"]:
            repos = [r for r in state["repos"] if r["full_name"].startswith(parts[1] + "/")]
            size, page = int(query.get("per_page", "30")), int(query.get("page", "1"))
            listed = [
                {k: r[k] for k in ("full_name", "clone_url", "default_branch", "archived")}
                for r in repos[(page - 1) * size : page * size]
            ]
            return self._answer(200, listed)
        if parts[:1] == ["repos"] and parts[3:4] == ["contents"]:
            repo = self._repo(state, "/".join(parts[1:3]))
            if repo is None:
                return self._answer(404, {"message": "Not Found"})
            path = "/".join(parts[4:])
            shown = subprocess.run(
                ["git", "show", f"{query.get('ref', 'HEAD')}:{path}"],
                cwd=repo["bare"],
                capture_output=True,
            )
            if shown.returncode:
                return self._answer(404, {"message": "Not Found"})
            content = base64.b64encode(shown.stdout).decode()
            return self._answer(200, {"encoding": "base64", "content": content, "path": path})
        if parts[:1] == ["repos"] and parts[3:] == ["pulls"]:
            full = "/".join(parts[1:3])
            head = query.get("head", "")
            pulls = [
                p
                for p in state["pulls"]
                if p["repo"] == full
                and p["state"] == query.get("state", "open")
                and (not head or f"{full.split('/')[0]}:{p['head']}" == head)
            ]
            return self._answer(200, pulls)
        if parts[:1] == ["repos"] and parts[3:] == ["issues"]:
            full, wanted = "/".join(parts[1:3]), query.get("labels", "")
            issues = [
                i
                for i in state.get("issues", [])
                if i["repo"] == full
                and i["state"] == query.get("state", "open")
                and (not wanted or wanted in [label["name"] for label in i["labels"]])
            ]
            return self._answer(200, issues)
        return self._answer(404, {"message": "Not Found"})

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        body = self._body()
        parts = url.path.strip("/").split("/")
        if parts[:1] == ["hooks"]:  # a chat's incoming webhook: no GitHub token
            with LOCK:
                state = self._state()
                state.setdefault("webhooks", []).append({"hook": parts[-1], "payload": body})
                self.state_file.write_text(json.dumps(state, indent=2))
            return self._answer(200, {"ok": True})
        if not self._authorised("POST", url.path, body):
            return
        if parts[:1] == ["repos"] and parts[3:4] == ["issues"]:
            return self._issue_post(parts, body)
        if parts[:1] != ["repos"] or parts[3:] != ["pulls"]:
            return self._answer(404, {"message": "Not Found"})
        with LOCK:
            state = self._state()
            if state.get("retry_after_once"):  # a secondary rate limit, once
                state["retry_after_once"] = False
                self.state_file.write_text(json.dumps(state, indent=2))
                data = b'{"message": "You have exceeded a secondary rate limit"}'
                self.send_response(429)
                self.send_header("Retry-After", "1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            full = "/".join(parts[1:3])
            if any(
                p["repo"] == full and p["head"] == body.get("head") and p["state"] == "open"
                for p in state["pulls"]
            ):
                return self._answer(422, {"message": "A pull request already exists"})
            number = self._next_number(state)
            pull = {
                "repo": full,
                "number": number,
                "state": "open",
                "head": body.get("head"),
                "base": body.get("base"),
                "title": body.get("title"),
                "body": body.get("body"),
                "html_url": f"https://github.invalid/{full}/pull/{number}",
            }
            state["pulls"].append(pull)
            self.state_file.write_text(json.dumps(state, indent=2))
        return self._answer(201, pull)

    def do_PATCH(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        body = self._body()
        if not self._authorised("PATCH", url.path, body):
            return
        parts = url.path.strip("/").split("/")
        with LOCK:
            state = self._state()
            full = "/".join(parts[1:3])
            if parts[3:4] == ["issues"]:
                for issue in state.get("issues", []):
                    if issue["repo"] == full and str(issue["number"]) == parts[-1]:
                        keys = {"title", "body", "state", "state_reason"}
                        issue.update({k: v for k, v in body.items() if k in keys})
                        self.state_file.write_text(json.dumps(state, indent=2))
                        return self._answer(200, issue)
                return self._answer(404, {"message": "Not Found"})
            for pull in state["pulls"]:
                if pull["repo"] == full and str(pull["number"]) == parts[-1]:
                    pull.update({k: v for k, v in body.items() if k in {"title", "body"}})
                    self.state_file.write_text(json.dumps(state, indent=2))
                    return self._answer(200, pull)
        return self._answer(404, {"message": "Not Found"})

    def _issue_post(self, parts: list[str], body: dict[str, Any]) -> None:
        """Open an issue, or comment on one."""
        full = "/".join(parts[1:3])
        with LOCK:
            state = self._state()
            issues = state.setdefault("issues", [])
            if parts[3:] == ["issues"]:
                number = self._next_number(state)
                issue = {
                    "repo": full,
                    "number": number,
                    "state": "open",
                    "title": body.get("title"),
                    "body": body.get("body"),
                    "labels": [{"name": name} for name in body.get("labels", [])],
                    "comments": [],
                    "html_url": f"https://github.invalid/{full}/issues/{number}",
                }
                issues.append(issue)
                self.state_file.write_text(json.dumps(state, indent=2))
                return self._answer(201, issue)
            for issue in issues:
                if issue["repo"] == full and str(issue["number"]) == parts[4:5][0]:
                    if parts[5:] != ["comments"]:
                        break
                    issue["comments"].append(body.get("body"))
                    self.state_file.write_text(json.dumps(state, indent=2))
                    return self._answer(201, {"body": body.get("body")})
        return self._answer(404, {"message": "Not Found"})

    @staticmethod
    def _next_number(state: dict[str, Any]) -> int:
        """Pull requests and issues share their numbers, as on GitHub."""
        taken = [item["number"] for item in [*state["pulls"], *state.get("issues", [])]]
        return 1 + max(taken, default=0)

    def _authorised(self, method: str, path: str, detail: dict[str, Any]) -> bool:
        with LOCK, self.log.open("a", encoding="utf-8") as out:
            entry = {"method": method, "path": path, "detail": detail, "time": time.time()}
            out.write(json.dumps(entry) + "\n")
        if self.headers.get("Authorization") != f"Bearer {self._state()['token']}":
            self._answer(401, {"message": "Bad credentials"})
            return False
        return True

    def _state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    @staticmethod
    def _repo(state: dict[str, Any], full: str) -> dict[str, Any] | None:
        return next((r for r in state["repos"] if r["full_name"] == full), None)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length", "0"))
        return json.loads(self.rfile.read(length) or b"{}")

    def _answer(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the JSON-lines log records every request."""


@contextlib.contextmanager
def serving(state: Path, log: Path) -> Iterator[str]:
    """Run the stand-in on a free loopback port (its own process group, stopped by PID)."""
    from ci.golden_path import free_port, running

    port = free_port()
    with log.with_suffix(".out").open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--port",
                str(port),
                "--state",
                str(state),
                "--log",
                str(log),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        except urllib.error.HTTPError:
            return True  # it answers (a 401 without a token)
        except OSError:
            return False
        return True

    with running(process, ready, timeout=30, failure=lambda: "the GitHub stand-in did not start"):
        yield f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    Handler.state_file, Handler.log = args.state, args.log
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
