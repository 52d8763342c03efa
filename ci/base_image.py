"""Debian base images with Python, made locally (base images cannot be pulled here).

    uv run python -m ci.base_image            # make or reuse both images, print their names

`BASE_IMAGE` stands in for python:3.11-slim: debootstrap (minbase and `INCLUDE`) into a
scratch folder, drop docs, caches and package lists, then `podman import`. Two of
`INCLUDE` are not in python:3.11-slim (libgomp1, python3-distutils: 2 MB): the distroless
image below has them.

`DISTROLESS_IMAGE` stands in for gcr.io/distroless/python3-debian12, the lean image's default
base for Python 3.11: the same root filesystem cut down to the files of the Debian packages
that image is assembled from (its base, cc and python3 layers), as unpacked from the
packages (no byte-code compiled at install), with the /etc files, /tmp and the `python3`
alias it adds. No shell, no package manager, no core utilities.

The root filesystem tarballs are cached under ~/.cache/paved/ so a new container store
only re-imports them.
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

BASE_IMAGE = "localhost/paved-base:bookworm"
DISTROLESS_IMAGE = "localhost/paved-python3-distroless:bookworm"
#: The Debian packages gcr.io/distroless/python3-debian12 is made of (its base, cc and
#: python3 layers).
DISTROLESS_PACKAGES = (
    *("base-files", "netbase", "tzdata", "libc6", "libssl3"),
    *("libgcc-s1", "libgomp1", "libstdc++6"),
    *("libbz2-1.0", "libdb5.3", "libexpat1", "liblzma5", "libsqlite3-0", "libuuid1"),
    *("libncursesw6", "libtinfo6", "zlib1g", "libcom-err2", "libcrypt1", "libgssapi-krb5-2"),
    *("libk5crypto3", "libkeyutils1", "libkrb5-3", "libkrb5support0", "libnsl2"),
    *("libreadline8", "libtirpc3", "libffi8"),
    *("libpython3.11-minimal", "libpython3.11-stdlib", "python3.11-minimal"),
    "python3-distutils",
)
#: What debootstrap adds to minbase: Python, and what the distroless packages need besides.
INCLUDE = ("python3", "ca-certificates", "netbase", "libgomp1", "python3-distutils")
#: What distroless adds besides the packages' files: its users, the certificate bundle,
#: the loader cache and the `python3` alias (merged-/usr links and /tmp are added too).
DISTROLESS_USERS = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
)
DISTROLESS_GROUPS = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
DISTROLESS_EXTRA = ("etc/ssl/certs/ca-certificates.crt", "etc/ld.so.cache")
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
    """Return `name` (BASE_IMAGE or DISTROLESS_IMAGE), importing (and if need be
    debootstrapping) it first.

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
    tarball = CACHE / f"bookworm-minbase-{'-'.join(sorted(INCLUDE))}.tar"
    if not tarball.is_file():
        _debootstrap(tarball)
    if name == DISTROLESS_IMAGE:
        tarball = _distroless(tarball)
    elif name != BASE_IMAGE:
        raise ValueError(f"no recipe for {name}: choose {BASE_IMAGE} or {DISTROLESS_IMAGE}")
    done = _quiet("podman", "import", str(tarball), name)
    if done.returncode:
        raise RuntimeError(f"podman import failed:\n{done.stderr}")


def _debootstrap(tarball: Path) -> None:
    """debootstrap minbase with Python into `tarball`, less docs, caches and lists."""
    with tempfile.TemporaryDirectory(prefix="paved-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        done = _quiet(
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(INCLUDE)}",
            "bookworm",
            str(rootfs),
            MIRROR,
        )
        if done.returncode:
            raise RuntimeError(f"debootstrap failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        for path in PRUNE:
            shutil.rmtree(rootfs / path, ignore_errors=True)
        partial = tarball.with_suffix(".part")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)


def _distroless(minbase: Path) -> Path:
    """The distroless root filesystem tarball, cut from the minbase one (cached beside it)."""
    tarball = minbase.with_name(minbase.name.replace("minbase", "distroless"))
    if tarball.is_file():
        return tarball
    with tempfile.TemporaryDirectory(prefix="paved-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        rootfs.mkdir()
        subprocess.run(["tar", "-C", str(rootfs), "-xf", str(minbase)], check=True)
        keep = {"tmp", *DISTROLESS_EXTRA}
        for package in DISTROLESS_PACKAGES:
            keep.update(_package_files(rootfs, package))
        for path in list(keep):  # every folder on the way, and the merged-/usr links
            parts = Path(path).parts
            keep.update(str(Path(*parts[:end])) for end in range(1, len(parts)))
        partial = tarball.with_suffix(".part")
        with tarfile.open(partial, "w") as tar:
            for path in sorted(keep):
                tar.add(rootfs / path, arcname=path, recursive=False, filter=_as_root)
            for link in ("usr/bin/python3", "usr/bin/python"):
                _add_text(tar, link, "", link="python3.11")
            _add_text(tar, "etc/passwd", DISTROLESS_USERS)
            _add_text(tar, "etc/group", DISTROLESS_GROUPS)
            _add_text(tar, "home/nonroot", "", directory=True)
        partial.rename(tarball)
    return tarball


def _package_files(rootfs: Path, package: str) -> set[str]:
    """What `package` installed (per dpkg's list) and is still there, relative to the root.

    A path through a merged-/usr link (/lib/x86_64-linux-gnu/...) is kept under its real
    folder (usr/lib/...), with the link itself kept as a link.
    """
    info = rootfs / "var" / "lib" / "dpkg" / "info"
    listing = next(
        (found for found in (info / f"{package}.list", info / f"{package}:amd64.list")
         if found.is_file()),
        None,
    )  # fmt: skip
    if listing is None:
        raise RuntimeError(f"{package} is not installed in the debootstrapped root filesystem")
    root, files = rootfs.resolve(), set()
    for line in listing.read_text(encoding="utf-8").splitlines():
        listed = line.strip().lstrip("/")
        path = rootfs / listed
        if not listed or listed == "." or not (path.exists() or path.is_symlink()):
            continue
        parent = path.parent.resolve()
        if parent.is_relative_to(root):
            parts = Path(listed).parts
            links = (Path(*parts[:end]) for end in range(1, len(parts)))
            files.update(str(link) for link in links if (rootfs / link).is_symlink())
            files.add(str((parent / path.name).relative_to(root)))
    return files


def _as_root(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    if member.name == "tmp":
        member.mode = 0o1777
    return member


def _add_text(
    tar: tarfile.TarFile, name: str, text: str, *, link: str = "", directory: bool = False
) -> None:
    member = tarfile.TarInfo(name)
    data = text.encode()
    if link:
        member.type, member.linkname = tarfile.SYMTYPE, link
    elif directory:
        member.type, member.mode, member.uid, member.gid = tarfile.DIRTYPE, 0o700, 65532, 65532
    else:
        member.size, member.mode = len(data), 0o644
    tar.addfile(member, io.BytesIO(data) if member.isfile() else None)


if __name__ == "__main__":
    print(ensure_base_image())
    print(ensure_base_image(DISTROLESS_IMAGE))
    sys.exit(0)
