"""`paved ci` on bad input and broken peers: one clear line and exit 1, never a traceback."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from paved._credentials import without_credentials

from ci.golden_path import free_port, running
from tests.lib import helpers

SHA = "0123456789abcdef0123456789abcdef01234567"
PYPROJECT = '[project]\nname = "churn"\nversion = "1.0.0"\n\n[tool.paved]\nimage = "{image}"\n'


def paved(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "REGISTRY_"))},
        "GITHUB_SHA": SHA,
        "GITHUB_REF": "refs/heads/main",
    }
    return helpers.paved(env, "ci", *args, "--project", str(project))


def one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def team_repo(tmp_path: Path, image: str = "ghcr.io/acme/churn") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.format(image=image))
    (tmp_path / ".python-version").write_text("3.11\n")
    return tmp_path


@pytest.mark.libs
def test_a_malformed_pyproject_is_one_line(tmp_path: Path) -> None:
    repo = team_repo(tmp_path)
    (repo / "pyproject.toml").write_text('[project\nname = "churn"\n')
    one_line_error(paved(repo, "push"), "pyproject.toml is not valid TOML")


@pytest.mark.libs
@pytest.mark.parametrize("content", [None, "", "python3\n"])
def test_a_missing_or_wrong_python_version_is_one_line(tmp_path: Path, content: str | None) -> None:
    repo = team_repo(tmp_path)
    if content is None:
        (repo / ".python-version").unlink()
    else:
        (repo / ".python-version").write_text(content)
    found = "is missing" if content is None else "holds"
    one_line_error(paved(repo, "push"), ".python-version", found)


@pytest.mark.libs
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ci-bot:tok3n@github.com/acme/churn.git", "https://github.com/acme/churn.git"),
        ("https://x-access-token@github.com/acme/churn", "https://github.com/acme/churn"),
        ("https://github.com/acme/churn.git", "https://github.com/acme/churn.git"),
        ("git@github.com:acme/churn.git", "git@github.com:acme/churn.git"),  # ssh: a login name
        ("", ""),
    ],
)
def test_the_source_label_carries_no_credentials(url: str, expected: str) -> None:
    assert without_credentials(url) == expected


def _blob(layout: tarfile.TarFile, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    layout.addfile(info, io.BytesIO(data))
    return f"sha256:{digest}", len(data)


def oci_archive(path: Path) -> str:
    """A one-layer OCI image archive made here, byte for byte; returns its manifest digest."""
    files = io.BytesIO()
    with tarfile.open(fileobj=files, mode="w") as layer:
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        layer.addfile(info, io.BytesIO(b"hello\n"))
    raw = files.getvalue()
    packed = gzip.compress(raw, mtime=0)
    with tarfile.open(path, "w") as layout:
        layer_digest, layer_size = _blob(layout, packed)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [f"sha256:{hashlib.sha256(raw).hexdigest()}"],
                },
            }
        ).encode()
        config_digest, config_size = _blob(layout, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": config_size,
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest,
                        "size": layer_size,
                    }
                ],
            }
        ).encode()
        manifest_digest, manifest_size = _blob(layout, manifest)
        for name, data in (
            ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
            (
                "index.json",
                json.dumps(
                    {
                        "schemaVersion": 2,
                        "manifests": [
                            {
                                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "digest": manifest_digest,
                                "size": manifest_size,
                            }
                        ],
                    }
                ).encode(),
            ),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            layout.addfile(info, io.BytesIO(data))
    return manifest_digest


@pytest.mark.libs
def test_a_push_of_another_image_than_built_is_refused_before_any_request(
    tmp_path: Path,
) -> None:
    repo = team_repo(tmp_path / "repo")
    archive = tmp_path / "image.oci.tar"
    digest = oci_archive(archive)
    port = free_port()  # nothing listens there: a request would fail differently
    registry = ["--registry", f"127.0.0.1:{port}/acme", "--no-tls-verify"]
    done = paved(
        repo, "push", *registry, "--archive", str(archive), "--digest", "sha256:" + "0" * 64
    )
    one_line_error(done, digest, "refusing to push an image other than the one built")
    done = paved(repo, "push", *registry, "--archive", str(tmp_path / "repo" / "pyproject.toml"))
    one_line_error(done, "is not an OCI archive")


SERVER_500 = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Broken(BaseHTTPRequestHandler):
        def _fail(self):
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _fail

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Broken).serve_forever()
    """
)


@pytest.fixture
def broken_registry(tmp_path: Path) -> Iterator[str]:
    """A registry that answers every request with 500, on a loopback port; stopped by PID."""
    import urllib.error
    import urllib.request

    port = free_port()
    script = tmp_path / "broken_registry.py"
    script.write_text(SERVER_500)
    process = subprocess.Popen([sys.executable, str(script), str(port)], start_new_session=True)

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    with running(process, answers, timeout=20, failure=lambda: "no broken registry"):
        yield f"127.0.0.1:{port}"


@pytest.mark.image
def test_an_unreachable_registry_is_one_line(tmp_path: Path) -> None:
    repo = team_repo(tmp_path / "repo")
    archive = tmp_path / "image.oci.tar"
    oci_archive(archive)
    registry = f"127.0.0.1:{free_port()}/acme"
    done = paved(repo, "push", "--registry", registry, "--no-tls-verify", "--archive", str(archive))
    one_line_error(done, "skopeo copy", "connection refused")


@pytest.mark.image
def test_a_registry_answering_500_is_one_line(tmp_path: Path, broken_registry: str) -> None:
    repo = team_repo(tmp_path / "repo")
    archive = tmp_path / "image.oci.tar"
    oci_archive(archive)
    registry = ["--registry", f"{broken_registry}/acme", "--no-tls-verify"]
    one_line_error(paved(repo, "push", *registry, "--archive", str(archive)), "500")
    authfile = tmp_path / "auth.json"
    authfile.write_text('{"auths": {}}')
    login = subprocess.run(
        [sys.executable, "-m", "paved", "ci", "login", *registry, "--builder", "buildah"],
        env={
            **os.environ,
            "REGISTRY_USERNAME": "ci",
            "REGISTRY_PASSWORD": "secret-pw-1",
            "REGISTRY_AUTH_FILE": str(authfile),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    one_line_error(login, f"login to {broken_registry} as ci failed")
    assert "secret-pw-1" not in login.stdout + login.stderr
