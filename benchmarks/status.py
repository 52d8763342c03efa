"""`paved status` over a fleet of answers files, against `copier check-update` per repo.

    python3 ci/dev.py bench status [--repos 500] [--sample 5]

Two throwaway releases; one team repo generated at the first (no lock) and copied into a
fleet folder `--repos` times (a repo each: its own .git). Timed in the same run:
`paved status --no-check`, `paved status` (with the conformance score), and the anchor,
`copier check-update` run in `--sample` of the repos, scaled to the fleet.
Targets: under 10 s without the score and under 30 s with it for 500 repos.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.targets import Target, report
from ci.golden_path import DEMO_ANSWERS, generate, tool_env
from ci.snapshot import GIT_IDENTITY
from ci.throwaway import two_releases

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=500)
    parser.add_argument("--sample", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="paved-bench-status-") as tmp:
        scratch = Path(tmp)
        platform = scratch / "paved"
        two_releases(platform)
        env = {**tool_env(platform), **GIT_IDENTITY}
        first = scratch / "first"
        generate(first, env, DEMO_ANSWERS, vcs_ref="v0.1.0", lock=False)
        fleet = scratch / "fleet"
        for number in range(args.repos):
            shutil.copytree(first, fleet / f"team-{number:03d}", symlinks=True)

        status = [sys.executable, "-m", "paved", "status", str(fleet), "--json"]
        fast, out = timed([*status, "--no-check"], scratch, env)
        answer = json.loads(out)
        assert answer["behind"] == args.repos, answer["behind"]
        scored, out = timed(status, scratch, env)
        assert all(row["score"] is not None for row in json.loads(out)["repos"])

        copier = [sys.executable, "-m", "copier", "check-update", "--quiet"]
        sample = 0.0
        for number in range(args.sample):
            seconds, _ = timed(copier, fleet / f"team-{number:03d}", env)
            sample += seconds
        anchor = sample / args.sample * args.repos

    rows = [
        ("copier check-update per repo (anchor, scaled)", anchor, ""),
        ("paved status --no-check", fast, "target < 10 s"),
        ("paved status (with paved check)", scored, "target < 30 s"),
    ]
    print(f"\n{args.repos} team repos, one template source; anchor from {args.sample} repos\n")
    print(f"{'command':<48} {'seconds':>9} {'x anchor':>9}  note")
    for name, seconds, note in rows:
        print(f"{name:<48} {seconds:>9.2f} {seconds / anchor:>9.3f}  {note}")
    return report(
        [
            Target("paved status --no-check", f"{fast:.2f} s", "< 10 s", fast < 10),
            Target("paved status (with paved check)", f"{scored:.2f} s", "< 30 s", scored < 30),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
