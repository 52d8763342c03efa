"""The demo: generate a team repo from this checkout, run its pipeline, serve, predict.

    python3 ci/dev.py demo [--dest DIR]

Every step uses the real tools. The repo is generated under the canonical platform URL,
which git maps to a snapshot of this checkout, so it looks exactly like a team's repo.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ci.golden_path import DEMO_ANSWERS, IRIS_ROW, generate, run, serve, tool_env
from ci.snapshot import ROOT, snapshot


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, help="scratch folder (default: a new temp dir)")
    args = parser.parse_args()
    scratch = (args.dest or Path(tempfile.mkdtemp(prefix="paved-demo-"))).absolute()
    if scratch.exists() and any(scratch.iterdir()):
        print(f"demo: {scratch} is not empty; pick another --dest", file=sys.stderr)
        return 1
    scratch.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()

    def step(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    step(f"snapshot of {ROOT.name} as the platform release")
    platform = scratch / "platform"
    snapshot(platform)
    env = tool_env(platform)
    project = scratch / "iris-demo"
    step("paved new (copier copy + git init + uv lock)")
    generate(project, env, {**DEMO_ANSWERS, "dvc_remote_url": str(scratch / "dvc-remote")})
    step("uv sync")
    run(["uv", "sync", "--frozen"], project, env)
    step("uv run dvc repro")
    repro = run(["uv", "run", "--frozen", "dvc", "repro"], project, env)
    for line in repro.stdout.splitlines():
        if line.startswith(("ingest:", "prepare:", "train:", "evaluate:")):
            print(f"         {line}")
    step("uv run bentoml serve")
    with serve(project, env) as service:
        status, body = service.post("/predict", {"rows": [IRIS_ROW]})
        step(f"POST {service.url}/predict -> {status}")
        print(json.dumps({"request": {"rows": [IRIS_ROW]}, "response": body}, indent=2))
    step("service stopped")
    if args.dest is None:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print(f"the generated repo stays in {project}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
