"""`paved update` of one team repo against the two commands it replaces, in the same run.

    python3 ci/dev.py bench update [--rounds 3]

Two throwaway releases (ci/throwaway.py), and for each round two team repos generated at
the first: one gets `paved update` (update, conflict report, re-lock, lock check), the
other `copier update --defaults --skip-answered` followed by `uv lock --upgrade-package
paved --upgrade-package paved-ml` (the anchor). Where the time goes comes from paved's own
step timings and from git's trace2 events (every git process, and the fetches that reach the
template source). Targets: `paved update` no slower than the anchor, one template fetch per
update, and no more git processes than the anchor's copier update and uv lock.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.targets import Target, report
from ci.git_trace import git_trace
from ci.golden_path import DEMO_ANSWERS, generate, run, tool_env
from ci.snapshot import GIT_IDENTITY
from ci.throwaway import two_releases

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = run(command, cwd, env)
    return time.perf_counter() - started, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="paved-bench-update-") as tmp:
        scratch = Path(tmp)
        platform = scratch / "paved"
        two_releases(platform)
        env = {**tool_env(platform), **GIT_IDENTITY}
        paved: list[float] = []
        anchor: list[float] = []
        steps: dict[str, list[float]] = {}
        traces: dict[str, list[tuple[int, int, int, float]]] = {"paved": [], "anchor": []}
        for round_ in range(args.rounds):
            repos = {}
            for kind in ("paved", "anchor"):
                answers = {**DEMO_ANSWERS, "dvc_remote_url": str(scratch / "remote")}
                dest = scratch / f"{kind}-{round_}" / "iris-demo"
                dest.parent.mkdir()
                repos[kind] = generate(dest, env, answers, vcs_ref="v0.1.0")
            trace = scratch / f"trace-paved-{round_}.json"
            seconds, out = timed(
                [sys.executable, "-m", "paved", "update", str(repos["paved"]), "--json"],
                scratch,
                {**env, "GIT_TRACE2_EVENT": str(trace)},
            )
            answer = json.loads(out)
            assert answer["status"] == "updated", answer
            paved.append(seconds)
            for step, value in answer["seconds"].items():
                steps.setdefault(step, []).append(value)
            traces["paved"].append(git_trace(trace, platform))

            trace = scratch / f"trace-anchor-{round_}.json"
            traced = {**env, "GIT_TRACE2_EVENT": str(trace)}
            copier = [sys.executable, "-m", "copier", "update", "--defaults", "--skip-answered"]
            first, _ = timed(copier, repos["anchor"], traced)
            lock = ["uv", "lock", "--upgrade-package", "paved", "--upgrade-package", "paved-ml"]
            second, _ = timed(lock, repos["anchor"], traced)
            steps.setdefault("anchor: copier update", []).append(first)
            steps.setdefault("anchor: uv lock", []).append(second)
            anchor.append(first + second)
            traces["anchor"].append(git_trace(trace, platform))

    print(f"\n{'what':<44}{'median s':>10}")
    for step, values in steps.items():
        print(f"{step:<44}{statistics.median(values):>10.2f}")
    p, a = statistics.median(paved), statistics.median(anchor)
    print(f"{'paved update (whole command)':<44}{p:>10.2f}")
    print(f"{'anchor: copier update + uv lock':<44}{a:>10.2f}")
    print(f"\npaved update / anchor: {p / a:.2f}x (target <= 1.00), {args.rounds} rounds")
    medians = {
        kind: [statistics.median(values) for values in zip(*found, strict=True)]
        for kind, found in traces.items()
    }
    for kind, (processes, template, uv, seconds) in medians.items():
        print(
            f"{kind}: {processes:.0f} git processes, {template:.0f} template fetches "
            f"(+ {uv:.0f} by uv), {seconds:.2f} s in git"
        )
    fetches, processes = medians["paved"][1], medians["paved"][0]
    return report(
        [
            Target("paved update / anchor", f"{p / a:.2f}x", "<= 1.00x", p <= a),
            Target("template fetches per update", f"{fetches:.0f}", "<= 1", fetches <= 1),
            Target(
                "git processes per update",
                f"{processes:.0f}",
                f"<= {medians['anchor'][0]:.0f} (the anchor's)",
                processes <= medians["anchor"][0],
            ),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
