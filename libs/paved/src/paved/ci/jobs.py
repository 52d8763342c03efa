"""`paved ci`: what the platform's reusable workflows run in a team repo.

The workflows only check out the repo, install uv and call these commands from the
repo's own locked environment, so a laptop runs exactly what CI runs.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from paved._credentials import without_credentials
from paved._errors import CommandError, PavedError
from paved._git import git
from paved._proc import run
from paved.ci.actions import repository_url, run_commit
from paved.ci.image import ImageBuild, build_image, image_tags, push_image
from paved.constants import TELEMETRY_OFF
from paved.monitor import ALERT_FILE, AlertCheck, State
from paved.repo import (
    TeamRepo,
    platform_version,
    python_version,
    read_pyproject,
    require_clean,
    tool_paved,
)

__all__ = [
    "DISTROLESS_BASES",
    "DRIFT_INPUTS",
    "VERIFY_STEPS",
    "StepResult",
    "default_base_image",
    "drift_report",
    "image_build_from_repo",
    "scratch_env",
    "verify",
]

#: The distroless Python image for each Python a distroless image has (Debian 12's is 3.11;
#: Debian 13's, 3.13, is not a Python a team repo can choose).
DISTROLESS_BASES = {"3.11": "gcr.io/distroless/python3-debian12"}

#: The steps of `paved ci verify`, in the order they are reported: name and command (run
#: with this interpreter). `types` is reported last because it runs beside the others.
VERIFY_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("standard", ("-m", "paved", "check", "--quiet")),
    ("lint", ("-m", "ruff", "check", "--no-cache", ".")),
    ("format", ("-m", "ruff", "format", "--check", "--no-cache", ".")),
    ("tests", ("-m", "pytest", "-q", "-p", "no:cacheprovider")),
    ("pipeline", ("-m", "dvc", "repro")),
    # An explicit bentofile: BentoML refuses to find one itself under a hidden folder
    # (as act's workspace in ~/.cache is).
    ("bento", ("-m", "bentoml", "build", "--bentofile", "bentofile.yaml")),
    ("types", ("-m", "mypy")),
)


@dataclass(frozen=True)
class StepResult:
    """One step's outcome."""

    name: str
    ok: bool
    seconds: float
    output: str


def verify(
    project: Path,
    *,
    only: Sequence[str] | None = None,
    report: Callable[[StepResult], None] | None = None,
) -> list[StepResult]:
    """Run the steps (all, or `only` those named) and stop at the first failure.

    The pipeline trains and registers into a throwaway tracking store made for the run:
    verifying must never register versions or move `champion` in the team's tracking server,
    whatever MLFLOW_TRACKING_URI or [tool.paved] tracking-uri names. The type check reads
    the sources only, so it starts with the first step and runs beside the rest (on a
    runner's second core); every result is still reported in VERIFY_STEPS order.
    """
    known = [name for name, _ in VERIFY_STEPS]
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise PavedError(f"unknown step {', '.join(unknown)}: choose from {', '.join(known)}")
    steps = [(name, args) for name, args in VERIFY_STEPS if not only or name in only]
    results: list[StepResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="paved-verify-") as scratch,
        ThreadPoolExecutor(max_workers=1) as beside,
    ):
        env = scratch_env(project, Path(scratch))
        early = {
            name: beside.submit(_verify_step, name, args, project, env)
            for name, args in steps
            if name in BESIDE and len(steps) > 1
        }
        for name, args in steps:
            result = (
                early[name].result() if name in early else _verify_step(name, args, project, env)
            )
            results.append(result)
            if report:
                report(result)
            if not result.ok:
                break
    return results


#: Steps that read only the sources: they run beside the others (see verify).
BESIDE = frozenset({"types"})


def _verify_step(
    name: str, args: Sequence[str], project: Path, env: Mapping[str, str]
) -> StepResult:
    started = time.perf_counter()
    try:
        done = run([sys.executable, *args], cwd=project, env=env, check=False)
        ok, output = done.returncode == 0, done.stdout + done.stderr
    except CommandError as exc:  # a step that hangs past its timeout fails, saying so
        ok, output = False, str(exc)
    return StepResult(name, ok, time.perf_counter() - started, output)


def scratch_env(project: Path, scratch: Path) -> dict[str, str]:
    """The process environment, quiet, with a throwaway tracking store in `scratch`."""
    store = f"sqlite:///{scratch / 'mlflow.db'}"
    return {
        **os.environ,
        "BENTOML_HOME": os.environ.get("BENTOML_HOME", str(project / ".bentoml")),
        **TELEMETRY_OFF,
        "MLFLOW_TRACKING_URI": store,
        "MLFLOW_REGISTRY_URI": store,
    }


#: What the drift report compares the prediction log with: the training table, the champion.
DRIFT_INPUTS = ("data/prepared/train.csv", "models/champion")


@dataclass(frozen=True)
class DriftRun:
    """The monitoring run's outcome: the exit code, the commands' output, how it got inputs.

    `returncode` is 1 when a check failed, else 2 when one could not judge, else 0.
    """

    returncode: int
    output: str
    inputs: str
    #: The checks as the alert job reads them (`reports/alert.json`).
    checks: list[AlertCheck]


def paved_ml_command(install: str) -> Path:
    """The `paved-ml` of this environment (the team repo's own).

    A PavedError naming `install` (how to get it) when it is not there.
    """
    tool = Path(sys.executable).with_name("paved-ml")
    if not tool.exists():
        raise PavedError(f"paved-ml is not installed in this environment: {install}")
    return tool


def drift_report(
    project: Path,
    *,
    log: str,
    since_hours: float | None = None,
    labels: str | None = None,
    summary_file: str | None = None,
) -> DriftRun:
    """`paved-ml drift` of the prediction log at `log` (and `paved-ml feedback` of `labels`).

    The training table and the champion come from the DVC remote (`dvc pull`); if it does
    not have them, the pipeline makes them (`dvc repro evaluate`, with a throwaway tracking
    store). The checks' verdicts and tables go to `reports/alert.json`, for the alert job
    (`paved monitor alert`); a markdown summary is appended to `summary_file` (GitHub's step
    summary) when given.
    """
    tool = paved_ml_command("`uv sync --locked --group monitoring`")
    (project / ALERT_FILE).unlink(missing_ok=True)  # never a verdict of an earlier run
    with tempfile.TemporaryDirectory(prefix="paved-drift-") as scratch:
        env = scratch_env(project, Path(scratch))
        inputs = "in the repo"
        if not all((project / path).exists() for path in DRIFT_INPUTS):
            pulled = run(
                [sys.executable, "-m", "dvc", "pull", *DRIFT_INPUTS],
                cwd=project,
                env=env,
                check=False,
            )
            inputs = "pulled from the DVC remote"
            if pulled.returncode or not all((project / path).exists() for path in DRIFT_INPUTS):
                run(
                    [sys.executable, "-m", "dvc", "repro", "evaluate"],
                    cwd=project,
                    env=env,
                    detail_lines=10,
                )
                inputs = "made by `dvc repro evaluate` (the DVC remote did not have them)"
        command = [str(tool), "drift", "--log", log]
        if since_hours is not None:
            command += ["--since-hours", str(since_hours)]
        done = [("drift", run(command, cwd=project, env=env, check=False))]
        if labels:
            feedback = [str(tool), "feedback", labels, "--log", log]
            done.append(("accuracy", run(feedback, cwd=project, env=env, check=False)))
    checks = [_check(project, kind, result.returncode) for kind, result in done]
    codes = {result.returncode for _, result in done}
    returncode = 1 if 1 in codes else 2 if codes - {0} else 0
    output = "\n".join(result.stdout + result.stderr for _, result in done)
    outcome = DriftRun(returncode, output, inputs, checks)
    (project / ALERT_FILE).parent.mkdir(parents=True, exist_ok=True)
    (project / ALERT_FILE).write_text(json.dumps({"checks": checks}, indent=2) + "\n")
    if summary_file:
        with open(summary_file, "a", encoding="utf-8") as out:
            out.write(_drift_summary(outcome))
    return outcome


def _check(project: Path, kind: str, returncode: int) -> AlertCheck:
    """One check for the alert: its state and its table (feature, statistic, threshold, value)."""
    state: State = "passed" if returncode == 0 else "failed" if returncode == 1 else "not judged"
    rows: list[list[str]] = []
    path = project / "reports" / ("drift.json" if kind == "drift" else "feedback.json")
    data = json.loads(path.read_text(encoding="utf-8")) if state != "not judged" else {}
    if kind == "drift":
        for name, column in (data.get("columns") or {}).items():
            if column.get("drifted"):
                value = column.get("value")
                shown = "n/a" if value is None else f"{value:.4g}"
                rows.append([name, str(column.get("method")), str(column.get("threshold")), shown])
    else:
        latest = (data.get("windows") or [{}])[-1]
        for found in data.get("below") or []:
            rows.append(
                [
                    str(found["metric"]),
                    f"window from {latest.get('start')} ({latest.get('rows')} labels)",
                    f">= {found['threshold']}",
                    f"{found['value']:.4f}",
                ]
            )
    return AlertCheck(check=kind, state=state, rows=rows)


def _drift_summary(result: DriftRun) -> str:
    """The monitoring run as markdown for GitHub's step summary."""
    lines = [f"## Monitoring: reference and champion {result.inputs}", ""]
    for check in result.checks:
        lines.append(f"- {check['check']}: **{check['state']}**")
    rows = [row for check in result.checks for row in check["rows"]]
    if rows:
        lines += [
            "",
            "| feature or metric | statistic | threshold | value |",
            "| --- | --- | --- | --- |",
        ]
        lines += [f"| {' | '.join(row)} |" for row in rows]
    if any(check["state"] == "not judged" for check in result.checks):
        lines += ["", "```", result.output.strip()[-3000:], "```"]
    lines += ["", "The reports are the `drift-report` artifact of this run."]
    return "\n".join(lines) + "\n"


def default_base_image(python: str) -> str:
    """The image's base when none is named: distroless Python where one has the repo's Python.

    A distroless image holds Python and the libraries it links, and no shell, package manager
    or core utilities (decision 0023); a pin to a patch release, or a Python no distroless
    image has, takes Docker's slim Python of that version.
    """
    return DISTROLESS_BASES.get(python, f"python:{python}-slim")


def image_build_from_repo(
    project: Path,
    *,
    registry: str | None = None,
    image_name: str | None = None,
    base_image: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ImageBuild:
    """Describe the image of a team repo: name, tags and labels from the repo and CI context.

    In GitHub Actions (and act) the commit, ref and repository come from GITHUB_* variables;
    on a laptop from git. PAVED_DEFAULT_BRANCH names the branch that gets `latest`.
    """
    env = os.environ if env is None else env
    pyproject = read_pyproject(project)
    settings = tool_paved(pyproject, project)
    default_registry, _, default_name = str(settings.get("image", "")).rpartition("/")
    registry = registry or default_registry
    image_name = image_name or default_name
    if not registry or not image_name:
        raise PavedError("no image name: set [tool.paved] image, or pass --registry/--image-name")
    sha, ref = run_commit(env)
    sha = sha or git(project, "rev-parse", "HEAD")
    ref = ref or f"refs/heads/{git(project, 'branch', '--show-current')}"
    version = str(pyproject.get("project", {}).get("version", "0"))
    python = python_version(project)
    base_image = base_image or default_base_image(python)
    source = repository_url(env)
    labels = {
        "org.opencontainers.image.source": source
        or without_credentials(git(project, "remote", "get-url", "origin", check=False))
        or "unknown",
        "org.opencontainers.image.revision": sha,
        "org.opencontainers.image.version": ref.removeprefix("refs/tags/")
        if ref.startswith("refs/tags/")
        else version,
        "org.opencontainers.image.title": image_name,
        "org.opencontainers.image.base.name": base_image,
        "dev.paved.platform.version": platform_version(project),
        **champion_labels(project),
    }
    return ImageBuild(
        project=project,
        image=f"{registry}/{image_name}",
        tags=image_tags(sha=sha, ref=ref, default_branch=env.get("PAVED_DEFAULT_BRANCH") or "main"),
        base_image=base_image,
        python_version=python,
        labels=labels,
    )


def champion_labels(project: Path) -> dict[str, str]:
    """The model the image serves, from the champion's record (`TeamRepo.champion`).

    Deploys and `paved deploy status` read it from the image. {} without a record.
    """
    record = TeamRepo(project).champion
    labels = {
        "dev.paved.model.name": record.get("model_name"),
        "dev.paved.model.version": record.get("version"),
    }
    return {key: str(value) for key, value in labels.items() if value not in (None, "")}


def build_and_push(
    build: ImageBuild,
    *,
    push: bool,
    builder: str | None,
    tls_verify: bool,
    archive: Path | None = None,
) -> str | None:
    """Build the image (and its OCI archive); push it when asked. Returns the digest, if any.

    A push labels the image with the commit: it refuses a tree with uncommitted changes,
    whose image would not be the commit it names.
    """
    if push:
        require_clean(
            build.project, then="commit them first, so the image is the commit it is labelled with"
        )
    digest = build_image(build, builder=builder, tls_verify=tls_verify, archive=archive)
    return push_image(build, builder=builder, tls_verify=tls_verify) if push else digest
