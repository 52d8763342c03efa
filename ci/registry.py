"""A throwaway OCI registry (Debian's docker-registry) on a free 127.0.0.1 port."""

from __future__ import annotations

import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from golden_path import free_port, stop

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


@dataclass(frozen=True)
class Registry:
    """A running registry: `host` is 127.0.0.1:<port>."""

    host: str
    pid: int


@contextmanager
def local_registry(timeout: float = 30) -> Iterator[Registry]:
    """Start a registry on a free loopback port; yield once it answers; stop it by PID."""
    with tempfile.TemporaryDirectory(prefix="paved-registry-") as scratch:
        port = free_port()
        config = Path(scratch) / "config.yml"
        config.write_text(CONFIG.format(root=Path(scratch) / "data", port=port))
        process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while not _alive(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"registry on port {port} did not start")
                time.sleep(0.1)
            # The answer must come from the process we started, not from a squatter.
            if process.poll() is not None:
                raise RuntimeError(f"port {port} answered, but our registry exited")
            yield Registry(f"127.0.0.1:{port}", process.pid)
        finally:
            stop(process)


def _alive(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
