"""`paved status` over a fleet of answers files, against `copier check-update` per repo.

    python3 ci/dev.py bench status [--repos 500] [--sample 5]

Two throwaway releases; one team repo generated at the first (no lock) and copied into a
fleet folder `--repos` times (a repo each: its own .git). Timed in the same run:
`paved status --no-check`, `paved status` (with the conformance score), and the anchor,
`copier check-update` run in `--sample` of the repos, scaled to the fleet.
Targets: under 10 s without the score and under 30 s with it for 500 repos.

The models column: each repo is given a model of its own, seeded into a tracking store with
paved_ml's own calls (two versions through the champion gate, a staging alias, a drift and
an accuracy run), and `paved status --no-check --tracking URL` reads them from a loopback
`mlflow server`. Its anchor is MLflow's Python client asking the same per model (the model,
its versions, each version's run, the monitoring runs), in `--sample` models, scaled.
Target: the fleet's models in at most 15 s; the calls per repo are printed. The same
fleet's dashboard (`--format html`) is then loaded in headless Chromium from file://, and
its load time printed.
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
from tests.lib.helpers import mlflow_server, seed_model

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Seconds and stdout of `command`; its stderr is passed through."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True)
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
        pyproject = (first / "pyproject.toml").read_text()
        for number in range(args.repos):
            repo = fleet / f"team-{number:03d}"
            shutil.copytree(first, repo, symlinks=True)
            named = pyproject.replace('"iris-demo"', f'"team-{number:03d}"')
            (repo / "pyproject.toml").write_text(named)

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

        models, models_anchor, calls, page_load = models_column(scratch, fleet, env, args)

    rows = [
        ("copier check-update per repo (anchor, scaled)", anchor, ""),
        ("paved status --no-check", fast, "target < 10 s"),
        ("paved status (with paved check)", scored, "target < 30 s"),
    ]
    model_rows = [
        ("mlflow client per model (anchor, scaled)", models_anchor, ""),
        ("paved status --no-check --tracking", models, "target <= 15 s"),
    ]
    print(f"\n{args.repos} team repos, one template source; anchor from {args.sample} repos\n")
    print(f"{'command':<48} {'seconds':>9} {'x anchor':>9}  note")
    for name, seconds, note in rows:
        print(f"{name:<48} {seconds:>9.2f} {seconds / anchor:>9.3f}  {note}")
    print(f"\nthe models column: {args.repos} models on a loopback mlflow server\n")
    for name, seconds, note in model_rows:
        ratio = seconds / models_anchor
        print(f"{name:<48} {seconds:>9.2f} {ratio:>9.3f}  {note}")
    print(
        f"tracking server calls: {calls:.0f} for {args.repos} repos "
        f"({calls / args.repos:.3f} per repo)"
    )
    print(
        f"dashboard of {args.repos} repos in headless chromium (file://): DOM ready "
        f"{page_load['dom_ready']:.3f} s, loaded {page_load['loaded']:.3f} s"
    )
    return report(
        [
            Target("paved status --no-check", f"{fast:.2f} s", "< 10 s", fast < 10),
            Target("paved status (with paved check)", f"{scored:.2f} s", "< 30 s", scored < 30),
            Target("paved status --tracking", f"{models:.2f} s", "<= 15 s", models <= 15),
        ]
    )


def models_column(
    scratch: Path, fleet: Path, env: dict[str, str], args: argparse.Namespace
) -> tuple[float, float, float, dict[str, float]]:
    """Seconds for the fleet's models, the anchor's (scaled), the calls made, and the
    dashboard's load in Chromium."""
    folder = scratch / "tracking"
    folder.mkdir()
    store = f"sqlite:///{folder / 'server.db'}"
    started = time.perf_counter()
    for number in range(args.repos):
        name = f"team-{number:03d}"
        seed_model(
            store,
            project=name,
            model=name,
            figures=[0.8, 0.9],
            deployed={"staging": "2"},
            monitoring=[("drift", False), ("accuracy", number % 7 == 0)],
            root=folder,
        )
    print(f"seeded {args.repos} models in {time.perf_counter() - started:.1f} s", flush=True)
    with mlflow_server(folder) as url:
        command = [sys.executable, "-m", "paved", "status", str(fleet), "--no-check"]
        command += ["--tracking", url]
        seconds, out = timed([*command, "--json"], scratch, env)
        if not out.strip():
            raise SystemExit("paved status --tracking printed nothing: its error is above")
        answer = json.loads(out)
        models = [row["model"] for row in answer["repos"]]
        assert all(m["champion"] == "2" and len(m["history"]) == 2 for m in models), out[-2000:]
        assert all(set(m["monitoring"]) == {"drift", "accuracy"} for m in models), out[-2000:]
        calls = float(answer["tracking"]["calls"])
        page = scratch / "fleet.html"
        timed([*command, "--format", "html", "--output", str(page)], scratch, env)
        page_load = dashboard_load(page)
        started = time.perf_counter()
        for number in range(args.sample):
            client_reads(url, f"team-{number:03d}")
        models_anchor = (time.perf_counter() - started) / args.sample * args.repos
    return seconds, models_anchor, calls, page_load


def dashboard_load(page: Path) -> dict[str, float]:
    """The dashboard's load in headless Chromium, from file://: DOM ready and load, seconds."""
    from tests.lib.browser import chromium, load_seconds

    with chromium() as browser:
        browser.get(page.as_uri())
        rows = browser.execute_script("return document.querySelectorAll('#fleet tbody tr').length")
        assert rows > 0, "the dashboard shows no row"
        return load_seconds(browser)


def client_reads(url: str, name: str) -> None:
    """What a script with MLflow's client asks per model for the same row."""
    from mlflow import MlflowClient

    client = MlflowClient(url, url)
    client.get_registered_model(name)
    experiment = client.get_experiment_by_name(name)
    for version in client.search_model_versions(f"name = '{name}'"):
        client.get_run(version.run_id)
    for kind in ("drift", "accuracy"):
        client.search_runs(
            [experiment.experiment_id],
            f"tags.`paved.monitoring.kind` = '{kind}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )


if __name__ == "__main__":
    raise SystemExit(main())
