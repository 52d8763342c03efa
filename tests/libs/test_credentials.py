"""The credentials a fleet run holds apart from the team code it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from paved._credentials import Held, held, is_credential

pytestmark = pytest.mark.libs

TOKEN = "ghp_0123456789abcdefHELD"
FILL = "protocol=https\nhost={host}\npath=acme/churn.git\n\n"


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("PAVED_GITHUB_TOKEN", "x", True),
        ("AWS_SECRET_ACCESS_KEY", "x", True),
        ("MLFLOW_TRACKING_PASSWORD", "x", True),
        ("SSH_AUTH_SOCK", "/run/agent", True),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://token.actions", True),
        ("UV_INDEX_URL", "https://user:s3cret@pypi.example/simple", True),
        ("GIT_AUTHOR_NAME", "Ada", False),
        ("GIT_CONFIG_KEY_0", "credential.helper", False),
        ("UV_INDEX_URL", "https://pypi.example/simple", False),
        ("PATH", "/usr/bin", False),
    ],
)
def test_what_counts_as_a_credential(name: str, value: str, secret: bool) -> None:
    assert is_credential(name, value) is secret


def test_children_and_the_start_environment_lose_the_credentials_until_given_back(
    tmp_path: Path,
) -> None:
    # A process started with the token, as `paved fleet update` is: inside `held()`, neither
    # its children's environment nor its own /proc/<pid>/environ (which a child can read)
    # holds it, nor a credential helper set through GIT_CONFIG_*; the pipe helper hands it
    # to a git call for the API's host only.
    script = f"""
import json, os, subprocess, sys
from paved._credentials import held
child = [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"]
with held() as credentials:
    seen = {{
        "child": subprocess.run(child, capture_output=True, text=True).stdout,
        "start": open(f"/proc/{{os.getpid()}}/environ", "rb").read().decode("latin-1"),
        "helper": subprocess.run(
            ["git", "credential", "fill"], input={FILL.format(host="127.0.0.1")!r},
            capture_output=True, text=True,
        ).stdout,
        "given": credentials.git(
            ["credential", "fill"], url="https://127.0.0.1/acme/churn.git",
            input={FILL.format(host="127.0.0.1")!r},
        ).stdout,
        "other": credentials.git(
            ["credential", "fill"], url="https://example.org/acme/churn.git",
            input={FILL.format(host="example.org")!r},
        ).stdout,
        "git_config": os.environ.get("GIT_CONFIG_COUNT"),
    }}
seen["after"] = os.environ.get("PAVED_GITHUB_TOKEN")
print(json.dumps(seen))
"""
    env = {
        key: value
        for key, value in os.environ.items()
        if not is_credential(key, value) and not key.startswith("GIT_CONFIG_")
    }
    env.update(
        {
            "PAVED_GITHUB_TOKEN": TOKEN,
            "PAVED_GITHUB_API": "https://127.0.0.1:9/api/v3",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "credential.helper",
            "GIT_CONFIG_VALUE_0": "!f() { echo username=x; echo password=$PAVED_GITHUB_TOKEN; }; f",
            "GIT_CONFIG_KEY_1": "user.name",
            "GIT_CONFIG_VALUE_1": "Ada",
            "HOME": str(tmp_path),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    import json

    seen = json.loads(done.stdout)
    assert TOKEN not in seen["child"] and "PAVED_GITHUB_API" in seen["child"]
    assert "GIT_CONFIG_KEY_0" in seen["child"] and "credential.helper" not in seen["child"]
    assert TOKEN not in seen["start"] and "PAVED_GITHUB_API=" in seen["start"]
    assert TOKEN not in seen["helper"]
    assert f"password={TOKEN}" in seen["given"]
    assert TOKEN not in seen["other"]
    assert seen["git_config"] == "1"
    assert seen["after"] == TOKEN  # given back when the block ends


def test_a_remote_calls_git_holds_no_token_in_its_environment() -> None:
    # Team code runs beside the fleet's own clones and pushes, and any process of the same
    # user can read theirs in /proc/<pid>/environ: a clone for one repo handed the token to
    # the build backend of another. Git gets what it reaches a remote with, no more.
    credentials = Held(
        {
            "PAVED_GITHUB_TOKEN": TOKEN,
            "GITHUB_TOKEN": TOKEN,
            "AWS_SECRET_ACCESS_KEY": "aws-secret",
            "SSH_AUTH_SOCK": "/run/agent.sock",
            "HTTPS_PROXY": "http://user:proxy-secret@proxy.internal:3128",
        }
    )
    show = ["-c", "alias.environment=!env", "environment"]
    seen = {
        url: credentials.git(show, url=url).stdout
        for url in (
            "https://github.com/acme/churn.git",
            "git@github.com:acme/churn.git",
            "file:///srv/git/churn.git",
            "/srv/git/churn.git",
        )
    }
    for url, environment in seen.items():
        assert TOKEN not in environment and "aws-secret" not in environment, url
    for url in ("https://github.com/acme/churn.git", "git@github.com:acme/churn.git"):
        assert "SSH_AUTH_SOCK=/run/agent.sock" in seen[url] and "proxy-secret" in seen[url]
    for url in ("file:///srv/git/churn.git", "/srv/git/churn.git"):
        assert "SSH_AUTH_SOCK" not in seen[url] and "proxy-secret" not in seen[url]


def test_held_gives_everything_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    before = dict(os.environ)
    with held() as credentials:
        assert "GITHUB_TOKEN" not in os.environ and credentials.token == TOKEN
    assert dict(os.environ) == before


def test_the_github_token_follows_a_redirect_on_its_host_only() -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from paved.fleet.github import GitHub

    seen: list[tuple[int, str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            port = self.server.server_address[1]
            seen.append((port, self.path, self.headers.get("Authorization", "")))
            if self.path.startswith("/api/renamed"):  # same host: a renamed repository
                self._answer(301, f"http://127.0.0.1:{port}/api/repo")
            elif self.path.startswith("/api/elsewhere"):  # another host (and port)
                self._answer(302, f"http://localhost:{other.server_address[1]}/download")
            else:
                body = json.dumps({"ok": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def _answer(self, code: int, location: str) -> None:
            self.send_response(code)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    api = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    other = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (api, other)]
    for thread in threads:
        thread.start()
    try:
        client = GitHub(
            {
                "PAVED_GITHUB_API": f"http://127.0.0.1:{api.server_address[1]}/api",
                "PAVED_GITHUB_TOKEN": TOKEN,
            }
        )
        assert client.get("/renamed") == {"ok": "/api/repo"}
        assert client.get("/elsewhere") == {"ok": "/download"}
    finally:
        for server in (api, other):
            server.shutdown()
            server.server_close()
    auth = {path: header for _port, path, header in seen}
    assert auth["/api/renamed"] == auth["/api/repo"] == f"Bearer {TOKEN}"
    assert auth["/api/elsewhere"] == f"Bearer {TOKEN}"
    assert auth["/download"] == ""  # the other host never saw the token


def test_a_password_in_a_url_reaches_the_server_and_no_command_line(tmp_path: Path) -> None:
    import base64
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from paved._credentials import AMBIENT, redact

    headers: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers.append(self.headers.get("Authorization", ""))
            authorised = bool(headers[-1])
            self.send_response(404 if authorised else 401)
            if not authorised:
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    trace = tmp_path / "trace.json"
    url = f"http://alice:s3cret@127.0.0.1:{server.server_address[1]}/acme/churn.git"
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("GIT_TRACE2_EVENT", str(trace))
            patch.setenv("GIT_TERMINAL_PROMPT", "0")
            done = AMBIENT.git(["ls-remote", "--", url], url=url, cwd=tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode  # the stand-in has no repository ...
    basic = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert headers[-1] == basic  # ... but the credentials in the URL reached it
    argv = [json.loads(line).get("argv", []) for line in trace.read_text().splitlines()]
    assert any("ls-remote" in a for a in argv)
    assert "s3cret" not in json.dumps(argv) and "s3cret" not in done.stderr
    assert redact(f"cannot clone {url}: refused") == (
        f"cannot clone http://127.0.0.1:{server.server_address[1]}/acme/churn.git: refused"
    )


def test_credentials_in_manifest_urls_are_never_reported(tmp_path: Path) -> None:
    import json
    import socket

    with socket.socket() as probe:  # a port nothing listens on: every clone is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"https://bot:s3cret@127.0.0.1:{port}/acme/churn.git"
    (tmp_path / "fleet.yml").write_text(
        f"- {url}\n- https://ghp_inUrlOnly@127.0.0.1:{port}/x.git\n"
    )
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    for command in (["status", "--json"], ["fleet", "update", "--to", "v0.1.0", "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "paved", *command[:-1], "fleet.yml", command[-1]]
            if command[0] == "status"
            else [sys.executable, "-m", "paved", "fleet", "update", "fleet.yml", *command[2:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert "cannot clone https://127.0.0.1" in done.stdout  # the reason is there ...
        for text in (done.stdout, done.stderr):  # ... without the user or password
            assert "s3cret" not in text and "ghp_inUrlOnly" not in text
        assert report["repos"]
    record = (tmp_path / ".paved-fleet" / "v0.1.0.json").read_text()
    assert "cannot clone" in record and "s3cret" not in record and "ghp_inUrlOnly" not in record
