"""Service image size and build time: `paved ci image` (lean, no package-manager layer)
against `bentoml containerize` with BentoML's default Dockerfile (the anchor), same bento
contents and packages, same run.

    uv run python benchmarks/image.py

Base images cannot be pulled here, so both builds start from local Debian bases made with
debootstrap (ci/base_image.py), each the default of its tool: the lean image from the
stand-in for gcr.io/distroless/python3-debian12 (`paved ci image`'s default base for Python
3.11: Python and the libraries it links, no shell or package manager), the default build
from the stand-in for python:3.11-slim (minbase + python3, ~120 MB), tagged python:3.11-slim,
with uv added (the default Dockerfile runs `pip install uv` otherwise). The default build
installs the same locked packages (paved-ml as a wheel) inside the image, plus its apt layer
(build-essential, git). Sizes are uncompressed (container store) and compressed (sum of the
pushed layers' blobs).

Target: the lean image at most 0.25 of the default's size, uncompressed and compressed
(MISSED and exit 1 otherwise). What each of the lean image's layers holds is listed, the
packages largest first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from paved.ci.image import BENTO_DIR, SITE_DIR, runtime_requirements

from benchmarks.targets import Target, report
from ci.base_image import DISTROLESS_IMAGE, ensure_base_image
from ci.golden_path import run, trained_repo
from ci.oci_registry import local_registry

ROOT = Path(__file__).resolve().parents[1]

CA = "/etc/ssl/certs/ca-certificates.crt"
#: The lean image's size at most this share of the default's, uncompressed and compressed.
TARGET = 0.25
DEFAULT_BASE = "docker.io/library/python:3.11-slim"


def sizes(ref: str, registry: str, scratch: Path) -> tuple[float, float]:
    """(uncompressed MB in the store, compressed MB pushed)."""
    inspect = subprocess.run(
        ["podman", "image", "inspect", ref], check=True, capture_output=True, text=True
    )
    uncompressed = json.loads(inspect.stdout)[0]["Size"] / 1e6
    name = ref.rsplit("/", 1)[-1].split(":", maxsplit=1)[0]
    target = f"{registry}/bench/{re.sub(r'[^a-z0-9-]', '-', name)}:size"
    subprocess.run(
        ["buildah", "push", "--tls-verify=false", ref, f"docker://{target}"],
        check=True,
        capture_output=True,
    )
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{target}"],
        check=True,
        capture_output=True,
        text=True,
    )
    manifest = json.loads(raw.stdout)
    compressed = sum(layer["size"] for layer in manifest["layers"]) / 1e6
    return uncompressed, compressed


def default_base(base: str) -> None:
    """The local base, plus uv, under the name BentoML's Dockerfile starts FROM."""
    container = subprocess.run(
        ["buildah", "from", base], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        # The build's installs go through this machine's proxy: trust its CA (mounted).
        config = ["--env", f"SSL_CERT_FILE={CA}", "--env", "UV_NATIVE_TLS=1"]
        subprocess.run(["buildah", "config", *config, container], check=True)
        subprocess.run(
            ["buildah", "copy", container, shutil.which("uv") or "uv", "/usr/local/bin/uv"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["buildah", "commit", "--quiet", container, DEFAULT_BASE],
            check=True,
            capture_output=True,
        )
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)


def default_bento(project: Path, platform: Path, env: dict[str, str], home: Path) -> str:
    """A bento whose own requirements are the repo's locked runtime packages."""
    wheels = project / "bench-wheels"
    run(
        ["uv", "build", "--wheel", "--out-dir", str(wheels), str(platform / "libs" / "paved-ml")],
        project,
        env,
    )
    exported = runtime_requirements(project, env)
    requirements = [
        line for line in exported.splitlines() if line and not line.startswith("paved-ml")
    ]
    (project / "bench-requirements.txt").write_text("\n".join(requirements) + "\n")
    bentofile = yaml.safe_load((project / "bentofile.yaml").read_text())
    bentofile["include"].append("bench-wheels/*.whl")
    bentofile["python"] = {
        "requirements_txt": "./bench-requirements.txt",
        "wheels": [f"./bench-wheels/{wheel.name}" for wheel in wheels.glob("*.whl")],
        "lock_packages": False,
    }
    (project / "bench-bentofile.yaml").write_text(yaml.safe_dump(bentofile))
    out = run(
        [
            "uv",
            "run",
            "--frozen",
            "bentoml",
            "build",
            "--bentofile",
            "bench-bentofile.yaml",
            "--output",
            "tag",
        ],
        project,
        {**env, "BENTOML_HOME": str(home)},
    ).stdout
    return out.strip().splitlines()[-1].removeprefix("__tag__:")


def main() -> int:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="paved-bench-image-") as tmp,
        local_registry() as registry,
    ):
        scratch = Path(tmp)
        project, env = trained_repo(scratch)
        base = ensure_base_image()
        lean_base = ensure_base_image(DISTROLESS_IMAGE)

        started = time.perf_counter()
        out = run(
            [
                "uv",
                "run",
                "--frozen",
                "paved",
                "ci",
                "image",
                "--registry",
                "localhost/bench",
                "--base-image",
                lean_base,
                "--builder",
                "buildah",
            ],
            project,
            env,
        ).stdout
        lean_seconds = time.perf_counter() - started
        lean_ref = re.search(r"^built (\S+)$", out, re.MULTILINE).group(1)
        rows.append(
            ("paved ci image (lean)", lean_seconds, *sizes(lean_ref, registry.host, scratch))
        )
        held = contents(lean_ref)

        default_base(base)
        home = scratch / "bentoml"
        tag = default_bento(project, scratch / "platform", env, home)
        started = time.perf_counter()
        build = (
            "import bentoml; "
            f"bentoml.container.build({tag!r}, backend='buildah', isolation='chroot', "
            f"image_tag=('localhost/bench/default:1',), volume=({CA!r}, {CA!r}, 'ro'))"
        )
        run(
            ["uv", "run", "--frozen", "python", "-c", build],
            project,
            {**env, "BENTOML_HOME": str(home)},
        )
        default_seconds = time.perf_counter() - started
        rows.append(
            (
                "bentoml containerize (default, anchor)",
                default_seconds,
                *sizes("localhost/bench/default:1", registry.host, scratch),
            )
        )
        subprocess.run(
            ["buildah", "rmi", "--force", lean_ref, "localhost/bench/default:1", DEFAULT_BASE],
            capture_output=True,
        )

    anchor = rows[-1]
    print()
    print(f"| {'image':<40} | build s | MB uncompressed | MB compressed | size vs default |")
    print(f"|{'-' * 42}|---------|-----------------|---------------|-----------------|")
    for name, seconds, uncompressed, compressed in rows:
        ratio = f"{uncompressed / anchor[2]:.2f} / {compressed / anchor[3]:.2f}"
        cells = f"{seconds:7.1f} | {uncompressed:15.0f} | {compressed:13.0f}"
        print(f"| {name:<40} | {cells} | {ratio:>15} |")
    print("\nwhat the lean image's layers hold (MB, uncompressed):")
    for layer, parts in held.items():
        print(f"  {layer}: {parts.pop('total'):.0f}")
        for part, megabytes in sorted(parts.items(), key=lambda item: -item[1])[:12]:
            print(f"      {part:<36} {megabytes:6.1f}")
    lean = rows[0]
    return report(
        [
            Target(
                f"lean image size vs the default's, {kind}",
                f"{lean[column] / anchor[column]:.2f}",
                f"<= {TARGET}",
                lean[column] / anchor[column] <= TARGET,
            )
            for kind, column in (("uncompressed", 2), ("compressed", 3))
        ]
    )


def contents(ref: str) -> dict[str, dict[str, float]]:
    """The lean image's layers: the base, the packages (largest first) and the bento."""
    container = subprocess.run(
        ["buildah", "from", ref], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        root = Path(
            subprocess.run(
                ["buildah", "mount", container], check=True, capture_output=True, text=True
            ).stdout.strip()
        )
        site, bento = root / SITE_DIR.lstrip("/"), root / BENTO_DIR.lstrip("/")
        found = {
            "base image": {"total": megabytes(root) - megabytes(site) - megabytes(bento)},
            f"COPY site ({SITE_DIR}, the locked runtime packages)": {
                "total": megabytes(site),
                **{entry.name: megabytes(entry) for entry in site.iterdir()},
            },
            f"COPY bento ({BENTO_DIR}, the service and the champion)": {"total": megabytes(bento)},
        }
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)
    return found


def megabytes(path: Path) -> float:
    """The size of the files under `path` (or of `path`), symbolic links not followed."""
    if path.is_file():
        return path.stat().st_size / 1e6
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6
    )


if __name__ == "__main__":
    sys.exit(main())
