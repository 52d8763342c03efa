"""A throwaway OCI registry (Debian's docker-registry) on a free 127.0.0.1 port."""

from __future__ import annotations

import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ci.golden_path import free_port, running

CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""
AUTH = """\
auth:
  htpasswd:
    realm: paved
    path: {path}
"""


@dataclass(frozen=True)
class Registry:
    """A running registry: `host` is 127.0.0.1:<port>."""

    host: str
    pid: int


@contextmanager
def local_registry(
    timeout: float = 30, users: Mapping[str, str] | None = None
) -> Iterator[Registry]:
    """Start a registry on a free loopback port; yield once it answers; stop it by PID.

    With `users` (name: password) the registry asks for basic authentication.
    """
    with tempfile.TemporaryDirectory(prefix="paved-registry-") as scratch:
        port = free_port()
        config = Path(scratch) / "config.yml"
        text = CONFIG.format(root=Path(scratch) / "data", port=port)
        if users:
            import bcrypt  # the registry reads bcrypt hashes only

            htpasswd = Path(scratch) / "htpasswd"
            htpasswd.write_text(
                "".join(
                    f"{name}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}\n"
                    for name, password in users.items()
                )
            )
            text += AUTH.format(path=htpasswd)
        config.write_text(text)
        process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        failure = f"registry on port {port} did not start"
        with running(process, lambda: _alive(port), timeout=timeout, failure=lambda: failure):
            # The answer must come from the process we started, not from a squatter.
            if process.poll() is not None:
                raise RuntimeError(f"port {port} answered, but our registry exited")
            yield Registry(f"127.0.0.1:{port}", process.pid)


def _alive(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as response:
            return response.status == 200
    except urllib.error.HTTPError as exc:
        return exc.code == 401 and "registry" in exc.headers.get(
            "Docker-Distribution-Api-Version", ""
        )
    except OSError:
        return False
