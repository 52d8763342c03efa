"""Bootstrap and run the project's two jobs with nothing but python3 and git.

    python3 ci/dev.py demo     # generate a team repo, run its pipeline, serve, predict
    python3 ci/dev.py test     # every test tier (extra arguments go to pytest)
    python3 ci/dev.py lint     # ruff and strict mypy on libs/

Installs uv (into a private venv under ~/.cache/paved, unless uv is on PATH), syncs the
workspace from uv.lock, then runs the job inside it. Standard library only.
"""

from __future__ import annotations

import os
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
    "demo": [["python", "ci/demo.py"]],
    "test": [["pytest"]],
    "lint": [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
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


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in JOBS:
        print(__doc__, file=sys.stderr)
        return 2
    job, extra = argv[0], argv[1:]
    uv = ensure_uv()
    env = dict(os.environ)
    # Cached bytecode: without it every pipeline stage re-compiles mlflow and scikit-learn.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # Trust the system's certificate store (proxies with their own CA), as pip and git do.
    env.setdefault("UV_SYSTEM_CERTS", "1")
    # Later steps (paved new, the team repo's own syncs) find uv on PATH.
    env["PATH"] = f"{Path(uv).parent}{os.pathsep}{env.get('PATH', '')}"
    subprocess.run([uv, "sync", "--locked", "--quiet"], cwd=ROOT, env=env, check=True)
    *first, last = JOBS[job]
    for command in [*first, [*last, *extra]]:
        code = subprocess.run([uv, "run", "--locked", *command], cwd=ROOT, env=env).returncode
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
