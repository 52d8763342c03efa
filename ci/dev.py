"""Bootstrap and run the project's jobs with nothing but python3 and git.

    python3 ci/dev.py demo              # generate a team repo, run its pipeline, serve, predict
    python3 ci/dev.py test [ARGS]       # every test tier (ARGS go to pytest, e.g. -m render)
    python3 ci/dev.py lint              # ruff, the format check and strict mypy on libs/
    python3 ci/dev.py bench NAME        # benchmarks/NAME.py (golden_path, update, fleet, ...)
    python3 ci/dev.py docs [ARGS]       # build the documentation site (ci/mkdocs.yml), strict
    python3 ci/dev.py run COMMAND...    # any command in the workspace (`uv run --locked`)

Installs uv (into a private venv under ~/.cache/paved, unless uv is on PATH), syncs the
workspace from uv.lock, installs the system tools the job needs (as root, with apt), then
runs the job inside the workspace. Standard library only.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "paved" / "tools"
UV_VERSION = "0.13.9"
#: Each job's commands; extra arguments go to the last one.
JOBS = {
    "demo": [["python", "-m", "ci.demo"]],
    # One worker per core; a module's tests stay on one worker (its fixtures are set up once).
    # The 25 slowest steps are listed at the end: where CI's time goes, in every run's log.
    "test": [
        [
            *("pytest", "--numprocesses", "auto", "--dist", "loadscope"),
            *("--no-loadscope-reorder", "--durations", "25"),
        ]
    ],
    "lint": [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
    "bench": [["python"]],
    "docs": [["mkdocs", "build", "--strict", "-f", "ci/mkdocs.yml"]],
    "run": [[]],
}
TIERS = ("render", "project", "libs", "update", "image", "workflows")
#: Commands the image and workflows test tiers run, and the Debian package of each: buildah builds
#: and runs images, podman imports the base, skopeo inspects and pushes, Debian's
#: docker-registry is the test registry, debootstrap makes the base image, binutils' strip
#: drops the extension modules' symbol tables; kubectl renders the Deployment an image is run
#: as, and util-linux's unshare, setpriv, nsenter and mount run it so (ci/pod.py).
IMAGE_TOOLS = {
    "buildah": "buildah",
    "podman": "podman",
    "skopeo": "skopeo",
    "docker-registry": "docker-registry",
    "debootstrap": "debootstrap",
    "strip": "binutils",
    "kubectl": "kubectl",
    "unshare": "util-linux",
    "setpriv": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
}
#: The commands each test tier needs beyond the workspace: the render tier renders and checks
#: a team repo's Kubernetes manifests with kubectl's kustomize; the libs tier installs Azurite,
#: Microsoft's Blob Storage emulator, with npm and makes its https certificate with openssl.
TIER_TOOLS = {
    # kubectl renders the overlays; npm installs Backstage's catalog-model to validate with.
    "render": {"kubectl": "kubectl", "npm": "npm"},
    "libs": {"npm": "npm", "openssl": "openssl"},
    # The fleet dashboard is tested in Chromium (chromium-driver brings it along).
    "update": {"chromedriver": "chromium-driver"},
    "image": IMAGE_TOOLS,
    "workflows": IMAGE_TOOLS,
}
#: What each benchmark needs beyond the image tools.
BENCH_TOOLS = {
    "service": {"wrk": "wrk"},
    "image": IMAGE_TOOLS,
    "ci_act": IMAGE_TOOLS,
    "status": {"chromedriver": "chromium-driver"},
}
#: Commits made by the tests (generated repos, throwaway releases) need an identity.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Paved CI",
    "GIT_AUTHOR_EMAIL": "ci@paved.invalid",
    "GIT_COMMITTER_NAME": "Paved CI",
    "GIT_COMMITTER_EMAIL": "ci@paved.invalid",
}


def ensure_uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    uv = TOOLS / "bin" / "uv"
    if not uv.exists():
        print(f"dev: installing uv into {TOOLS}", flush=True)
        venv.create(TOOLS, with_pip=True)
        subprocess.run(
            [str(TOOLS / "bin" / "python"), "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"],
            check=True,
        )
    return str(uv)


def selected_tiers(pytest_args: list[str]) -> list[str]:
    """The tiers a test run may select (its `-m` expression decides; without one, all)."""
    expression = None
    for index, arg in enumerate(pytest_args):
        if arg == "-m" and index + 1 < len(pytest_args):
            expression = pytest_args[index + 1]
        elif arg.startswith("-m") and len(arg) > 2:
            expression = arg[2:]
    if expression is None:
        return list(TIERS)
    try:  # a marker expression is a boolean one over the tier names
        return [
            tier
            for tier in TIERS
            if eval(expression, {"__builtins__": {}}, {name: name == tier for name in TIERS})
        ]
    except Exception:
        return list(TIERS)


def tier_tools(tiers: list[str]) -> dict[str, str]:
    """The commands (and their Debian packages) the given tiers need."""
    return {
        command: package for tier in tiers for command, package in TIER_TOOLS.get(tier, {}).items()
    }


def ensure_system_tools(tools: dict[str, str], why: str) -> bool:
    """Install the missing `tools` (command: Debian package) with apt as root; else explain.

    Returns False, after one message naming each missing tool and how to install it, when
    they cannot be installed here.
    """
    missing = {command: package for command, package in tools.items() if not shutil.which(command)}
    if not missing:
        return True
    packages = sorted(set(missing.values()))
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"dev: installing {' '.join(packages)} (apt) for {why}", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        install = ["apt-get", "install", "-y", "-qq", *packages]
        if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode == 0:
            still = [command for command in missing if not shutil.which(command)]
            if not still:
                return True
            missing = {command: missing[command] for command in still}
    print(
        f"dev: {why} need {', '.join(sorted(missing))}, not found on PATH. Install them with\n"
        f"    sudo apt-get install {' '.join(sorted(set(missing.values())))}\n"
        "or run only the tiers that need none: "
        "python3 ci/dev.py test -m 'project or update'",
        file=sys.stderr,
    )
    return False


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in JOBS or (argv[0] in {"bench", "run"} and len(argv) < 2):
        print(__doc__, file=sys.stderr)
        return 2
    job, extra = argv[0], argv[1:]
    if job == "test":
        tiers = [tier for tier in selected_tiers(extra) if tier in TIER_TOOLS]
        if tiers and not ensure_system_tools(
            tier_tools(tiers), f"the {', '.join(tiers)} test tiers"
        ):
            return 2
    if job == "bench":
        name = extra[0].removesuffix(".py")
        if not (ROOT / "benchmarks" / f"{name}.py").is_file():
            print(f"dev: no benchmark benchmarks/{name}.py", file=sys.stderr)
            return 2
        if not ensure_system_tools(BENCH_TOOLS.get(name, {}), f"benchmarks/{name}.py"):
            return 2
        extra = ["-m", f"benchmarks.{name}", *extra[1:]]
    uv = ensure_uv()
    env = dict(os.environ)
    # Cached bytecode: without it every pipeline stage re-compiles mlflow and scikit-learn.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # Trust the system's certificate store (proxies with their own CA), as pip and git do.
    env.setdefault("UV_SYSTEM_CERTS", "1")
    # Material for MkDocs prints a banner about its successor on every build.
    env.setdefault("NO_MKDOCS_2_WARNING", "1")
    # Later steps (paved new, the team repo's own syncs) find uv on PATH.
    env["PATH"] = f"{Path(uv).parent}{os.pathsep}{env.get('PATH', '')}"
    if job in {"test", "bench"} and not _git_knows_the_user():
        env = {**GIT_IDENTITY, **env}
    subprocess.run([uv, "sync", "--locked", "--quiet"], cwd=ROOT, env=env, check=True)
    *first, last = JOBS[job]
    for command in [*first, [*last, *extra]]:
        print(f"dev: uv run --locked {shlex.join(command)}", file=sys.stderr, flush=True)
        code = subprocess.run([uv, "run", "--locked", *command], cwd=ROOT, env=env).returncode
        if code:
            return code
    return 0


def _git_knows_the_user() -> bool:
    done = subprocess.run(["git", "config", "user.email"], capture_output=True, text=True)
    return bool(done.stdout.strip()) or "GIT_AUTHOR_EMAIL" in os.environ


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
