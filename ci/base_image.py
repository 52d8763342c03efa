"""A Debian base image with Python, made locally (base images cannot be pulled here).

    uv run python ci/base_image.py            # make or reuse localhost/paved-base:bookworm

debootstrap (minbase, python3, ca-certificates) into a scratch folder, drop docs, caches
and package lists, then `podman import`. The root filesystem tarball is cached under
~/.cache/paved/ so a new container store only re-imports it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BASE_IMAGE = "localhost/paved-base:bookworm"
MIRROR = os.environ.get("PAVED_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "paved" / "base"
PRUNE = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/cache/debconf/templates.dat-old",
)


def _quiet(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True)


def ensure_base_image(name: str = BASE_IMAGE) -> str:
    """Return `name`, importing (and if need be debootstrapping) it first.

    Processes that ask at once (the test workers) wait for one another: one debootstraps
    and imports, the others find the image made.
    """
    if _exists(name):
        return name
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _exists(name):
            _make(name)
    return name


def _exists(name: str) -> bool:
    return _quiet("buildah", "inspect", "--type", "image", name).returncode == 0


def _make(name: str) -> None:
    tarball = CACHE / "bookworm-minbase-python3.tar"
    if not tarball.is_file():
        with tempfile.TemporaryDirectory(prefix="paved-rootfs-") as scratch:
            rootfs = Path(scratch) / "rootfs"
            done = _quiet(
                "debootstrap",
                "--variant=minbase",
                "--include=python3,ca-certificates",
                "bookworm",
                str(rootfs),
                MIRROR,
            )
            if done.returncode:
                raise RuntimeError(
                    f"debootstrap failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
                )
            for path in PRUNE:
                shutil.rmtree(rootfs / path, ignore_errors=True)
            partial = tarball.with_suffix(".part")
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
            partial.rename(tarball)
    done = _quiet("podman", "import", str(tarball), name)
    if done.returncode:
        raise RuntimeError(f"podman import failed:\n{done.stderr}")


if __name__ == "__main__":
    print(ensure_base_image())
    sys.exit(0)
