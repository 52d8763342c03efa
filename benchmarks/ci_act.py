"""Wall time of a generated repo's CI under act, warm caches, against the same steps run
directly (`paved ci verify`, the anchor) in the same run.

    uv run python benchmarks/ci_act.py

The first act run warms uv's cache and act's copy of the platform; the second is reported.
Target: the warm run within 60 s (MISSED and exit 1 otherwise).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from benchmarks.targets import Target, report
from ci.golden_path import DEMO_ANSWERS, generate, run, tool_env
from ci.snapshot import snapshot

ROOT = Path(__file__).resolve().parents[1]

TARGET = 60.0


def main() -> int:
    act = str(Path(sys.executable).parent / "act")
    with tempfile.TemporaryDirectory(prefix="paved-bench-act-") as tmp:
        scratch = Path(tmp)
        sha = snapshot(scratch / "platform")
        env = tool_env(scratch / "platform")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        project = generate(
            scratch / "iris-demo", env, {**DEMO_ANSWERS, "dvc_remote_url": str(scratch / "remote")}
        )
        command = [
            act,
            "push",
            "-W",
            ".github/workflows/ci.yml",
            "-P",
            "ubuntu-latest=-self-hosted",
            "--local-repository",
            f"acme/paved@{sha}={scratch / 'platform'}",
        ]
        walls = []
        for _ in range(2):
            started = time.perf_counter()
            run(command, project, env)
            walls.append(time.perf_counter() - started)
        run(["uv", "sync", "--frozen"], project, env)
        started = time.perf_counter()
        run(["uv", "run", "--frozen", "paved", "ci", "verify"], project, env)
        direct = time.perf_counter() - started
    rows = [
        ("act ci.yml, first run", walls[0]),
        ("act ci.yml, warm", walls[1]),
        ("paved ci verify, direct (anchor)", direct),
    ]
    print()
    print(f"| {'measure':<34} | seconds | vs direct | vs {TARGET:.0f} s target |")
    print(f"|{'-' * 36}|---------|-----------|----------------|")
    for name, seconds in rows:
        print(
            f"| {name:<34} | {seconds:7.1f} | {seconds / direct:9.2f} | {seconds / TARGET:14.2f} |"
        )
    warm = walls[1]
    return report(
        [Target("act ci.yml, warm", f"{warm:.1f} s", f"<= {TARGET:.0f} s", warm <= TARGET)]
    )


if __name__ == "__main__":
    sys.exit(main())
