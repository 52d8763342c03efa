"""The `paved` command line: thin Typer wrappers over the package's functions."""

from __future__ import annotations

import io
import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from paved import __version__
from paved._credentials import held
from paved._errors import ExitCode, PavedError
from paved.adopt import adopt_project, show_adopt
from paved.checks import check_repo, show_check
from paved.ci.actions import export_env, mask, step_output, summary_file
from paved.ci.clouds import storage_credentials
from paved.ci.image import login, push_archive, push_image
from paved.ci.jobs import (
    StepResult,
    build_and_push,
    drift_report,
    image_build_from_repo,
    verify,
)
from paved.deploy import deploy_status, propose, show_deploy_status
from paved.fleet import fleet_status
from paved.fleet.backstage import tech_insights
from paved.fleet.dashboard import render_dashboard
from paved.fleet.models import tracking_server
from paved.fleet.rollout import (
    FETCHED_MANIFEST,
    UPDATE_REPORT,
    FleetReport,
    Outcome,
    fleet_deliver,
    fleet_fetch,
    fleet_update,
    read_record,
    show_rollout,
)
from paved.fleet.sources import find_waves
from paved.fleet.status import show_status
from paved.monitor import ALERT_FILE, alert
from paved.repo import TeamRepo
from paved.retrain import RETRAIN_DIR, propose_retrain, run_retrain
from paved.template import PLATFORM_URL, new_project
from paved.update import show_update, update_project

app = typer.Typer(
    name="paved",
    help="Generate and maintain ML team repos from the Paved platform template.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help texts name [tool.paved]: not markup
)
ci_app = typer.Typer(
    help="What the platform's reusable workflows run in a team repo (and you, locally).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(ci_app, name="ci")
fleet_app = typer.Typer(
    help="Every team repo at once: roll a platform release out on branches.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(fleet_app, name="fleet")
deploy_app = typer.Typer(
    help="Deploy a team repo's service: pull requests that move an environment's image.",
    no_args_is_help=True,
)
app.add_typer(deploy_app, name="deploy")
monitor_app = typer.Typer(
    help="Act on what a team repo's monitoring found: its alert issue.", no_args_is_help=True
)
app.add_typer(monitor_app, name="monitor")
retrain_app = typer.Typer(
    help="Retraining's pull request: the champion changes when a person merges.",
    no_args_is_help=True,
)
app.add_typer(retrain_app, name="retrain")
_err = Console(stderr=True)

# Options shared by the `paved fleet` commands.
FleetTarget = Annotated[
    str, typer.Argument(help="A folder of team repos, a manifest file, or github:ORG.")
]
FleetTo = Annotated[
    str | None, typer.Option(help="Release to roll out (default: the latest of --src).")
]
FleetSrc = Annotated[
    str, typer.Option(help="The platform repo whose latest release is the default.")
]
FleetOnly = Annotated[
    list[str] | None,
    typer.Option(help="Only this repo, or the last run's failed, conflicts or pending."),
]
FleetState = Annotated[Path, typer.Option(help="Where each run's per-repo record is kept.")]
MaxOpenPrs = Annotated[
    int | None, typer.Option(help="Open at most this many update pull requests at once.")
]

# Options shared by the `paved ci` commands.
Project = Annotated[Path, typer.Option(help="The team repo.")]
Registry = Annotated[
    str | None, typer.Option(help="Registry and namespace (default: [tool.paved] image).")
]
ImageName = Annotated[str | None, typer.Option(help="Image name in the registry.")]
TlsVerify = Annotated[bool, typer.Option(help="Verify the registry's TLS.")]
Builder = Annotated[
    str | None, typer.Option(help="buildx or buildah (default: buildx if a daemon answers).")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paved {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Paved: the paved road for ML teams."""


@app.command()
def new(
    dest: Annotated[Path, typer.Argument(help="Folder for the new repo: new, or empty.")],
    src: Annotated[str, typer.Option(help="The platform repo to generate from.")] = PLATFORM_URL,
    data: Annotated[
        list[str] | None,
        typer.Option("--data", "-d", help="An answer as NAME=VALUE; repeat for more."),
    ] = None,
    vcs_ref: Annotated[
        str | None, typer.Option(help="Platform release or commit (default: the latest release).")
    ] = None,
    defaults: Annotated[
        bool, typer.Option(help="Take the default for every question not given with --data.")
    ] = False,
    lock: Annotated[bool, typer.Option(help="Run `uv lock` in the new repo.")] = True,
) -> None:
    """Generate a team repo, initialise git, lock its environment and commit."""
    answers = _parse_data(data or [])
    path = new_project(dest, src=src, data=answers, vcs_ref=vcs_ref, defaults=defaults, lock=lock)
    _err.print(f"[green]created[/] {path}")


class StatusFormat(StrEnum):
    """How `paved status` prints the fleet."""

    table = "table"
    json = "json"
    html = "html"
    backstage = "backstage"


@app.command()
def status(
    target: Annotated[
        str, typer.Argument(help="A folder of team repos, a manifest file, or github:ORG.")
    ] = ".",
    check: Annotated[bool, typer.Option(help="Score each repo with paved check.")] = True,
    jobs: Annotated[int, typer.Option(help="Repos read at once.")] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    output_format: Annotated[
        StatusFormat,
        typer.Option(
            "--format",
            help="table; json; html: one self-contained dashboard page (no server, no CDN); "
            "backstage: the facts as Backstage Tech Insights facts (JSON).",
        ),
    ] = StatusFormat.table,
    output: Annotated[
        Path | None, typer.Option(help="Write the report to this file, not to stdout.")
    ] = None,
    tracking: Annotated[
        str | None,
        typer.Option(
            help="An MLflow tracking server: each row gains its model's champion, aliases "
            "and monitoring. Default: $MLFLOW_TRACKING_URI if it is an http(s) URL.",
        ),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            help="A rollout's fleet record (<state>/<release>.json): each row gains its "
            "update's outcome, a failed update shown as such.",
        ),
    ] = None,
) -> None:
    """Where every team repo stands: release, releases behind, pending update, score.

    With a tracking server, also its model: champion and metric, staging and production,
    the champion's age, and the latest drift and accuracy checks. The login comes from
    MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.

    Exit codes: 0 every repo is on its latest release, 1 some repo is behind or could not
    be read.
    """
    server = tracking_server(tracking, os.environ)
    if record is not None and not record.is_file():
        raise PavedError(f"{record}: no fleet record there")
    outcomes = read_record(record) if record is not None else None
    report = fleet_status(target, check=check, jobs=jobs, tracking=server, record=outcomes)
    chosen = StatusFormat.json if as_json else output_format
    if chosen is StatusFormat.table and output is None:
        show_status(report, Console())
        raise typer.Exit(report.exit_code)
    if chosen is StatusFormat.html:
        text = render_dashboard(report)
    elif chosen is StatusFormat.json:
        text = json.dumps(report.as_json(), indent=2) + "\n"
    elif chosen is StatusFormat.backstage:
        text = json.dumps(tech_insights(report), indent=2) + "\n"
    else:
        buffer = Console(file=io.StringIO(), width=200, color_system=None)
        show_status(report, buffer)
        text = buffer.file.getvalue()  # type: ignore[attr-defined]
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)
    raise typer.Exit(report.exit_code)


@fleet_app.command("update")
def fleet_update_command(
    target: FleetTarget,
    to: FleetTo = None,
    src: FleetSrc = PLATFORM_URL,
    dry_run: Annotated[
        bool, typer.Option(help="Report what each repo would get; commit and push nothing.")
    ] = False,
    jobs: Annotated[int, typer.Option(help="Repos updated at once.")] = 2,
    only: FleetOnly = None,
    wave: Annotated[
        str | None,
        typer.Option(help="Only the repos of this wave of the manifest (its `waves:`)."),
    ] = None,
    lock: Annotated[bool, typer.Option(help="Re-lock each repo (paved update).")] = True,
    max_open_prs: MaxOpenPrs = None,
    state: FleetState = Path(".paved-fleet"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Update every team repo on a branch paved/update-vX.Y.Z, push it, open a pull request.

    Never pushes a default branch. Re-running changes nothing that is done. Exit code 1
    when any repo failed (the others go on).
    """
    if wave is not None:
        if only:
            raise PavedError("--wave and --only each choose the repos: give one of them")
        waves = {found.name: found for found in find_waves(target)}
        if wave not in waves:
            raise PavedError(f"--wave {wave}: {target} has the waves {', '.join(waves)}")
        only = list(waves[wave].repos)
        if not only:
            raise PavedError(f"--wave {wave} holds no repo")
    with Progress(console=_err, transient=True) as progress:
        task = progress.add_task("paved fleet update", total=None)

        def advance(outcome: Outcome) -> None:
            progress.advance(task)
            progress.console.print(f"{outcome.outcome:>9} {escape(outcome.name)}", highlight=False)

        report = fleet_update(
            target,
            to=to,
            dry_run=dry_run,
            jobs=jobs,
            only=sorted(_ids(only)),
            lock=lock,
            max_open_prs=max_open_prs,
            state=state,
            platform_url=src,
            report=advance,
            done=_print_rollout if not as_json else _print_json,
        )
    raise typer.Exit(report.exit_code)


@fleet_app.command("fetch")
def fleet_fetch_command(
    target: FleetTarget,
    out: Annotated[Path, typer.Option(help="A new folder for the copies and their index.")],
    to: FleetTo = None,
    src: FleetSrc = PLATFORM_URL,
    only: FleetOnly = None,
    state: FleetState = Path(".paved-fleet"),
) -> None:
    """Step 1 of a rollout in three: copy each repo's default branch into --out.

    Runs no repo's code. Step 2, `paved fleet update OUT/fleet.yml --to vX.Y.Z --state
    OUT/.state --json > OUT/report.json`, needs no credential and pushes nothing; step 3,
    `paved fleet deliver`, pushes the branches and opens the pull requests.
    """
    index = fleet_fetch(
        target, out=out, to=to, only=sorted(_ids(only)), state=state, platform_url=src
    )
    for entry in index["repos"]:
        said = entry.get("problem") or (
            f"{entry['tip'][:12]} already pushed"
            if entry.get("tip")
            else f"copied to {entry['copy']}"
        )
        typer.echo(f"{entry['name']}: {said}")
    step2 = (
        f"paved fleet update {out / FETCHED_MANIFEST} --to {index['release']} "
        f"--state {out / '.state'} --json"
    )
    typer.echo(f"next, with no credential: {step2} > {out / UPDATE_REPORT}")


@fleet_app.command("deliver")
def fleet_deliver_command(
    target: Annotated[str, typer.Argument(help="The fleet, as step 1 was given it.")],
    handed: Annotated[Path, typer.Option("--from", help="The folder steps 1 and 2 worked in.")],
    update_report: Annotated[
        Path | None,
        typer.Option("--report", help="Step 2's JSON report (default: FROM/report.json)."),
    ] = None,
    fetched: Annotated[
        Path | None, typer.Option(help="Step 1's index (default: FROM/fetched.json).")
    ] = None,
    jobs: Annotated[int, typer.Option(help="Repos delivered at once.")] = 2,
    max_open_prs: MaxOpenPrs = None,
    state: FleetState = Path(".paved-fleet"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Step 3 of 3: push each update branch of step 2, open its pull request, record it.

    A branch is pushed only if it is one commit on the default branch as step 1 fetched it.
    Exit code 1 when any repo failed.
    """
    report = fleet_deliver(
        target,
        handed=handed,
        update_report=update_report,
        fetched=fetched,
        jobs=jobs,
        max_open_prs=max_open_prs,
        state=state,
        done=_print_rollout if not as_json else _print_json,
    )
    raise typer.Exit(report.exit_code)


def _print_rollout(report: FleetReport) -> None:
    show_rollout(report, Console())


def _print_json(report: FleetReport) -> None:
    typer.echo(json.dumps(report.as_json(), indent=2))


@deploy_app.command("propose")
def deploy_propose(
    environment: Annotated[str, typer.Argument(help="staging or production.")],
    project: Project = Path("."),
    digest: Annotated[
        str | None,
        typer.Option(
            help="The digest to deploy (sha256:...): a release's, or an earlier one (a rollback)."
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--from", help="Promote: deploy the digest this environment runs."),
    ] = None,
    image: Annotated[
        str | None, typer.Option(help="The image (default: [tool.paved] image).")
    ] = None,
    github: Annotated[
        str | None,
        typer.Option(help="OWNER/NAME: open or update the pull request there (GITHUB_TOKEN)."),
    ] = None,
) -> None:
    """Open (or update) the one pull request that moves ENVIRONMENT to an image.

    One commit on paved/deploy-ENVIRONMENT, from the current commit; the branch is pushed
    to origin (never the default branch), and merging the pull request deploys. Runs none
    of the repo's code.
    """
    with held() as credentials:
        proposal = propose(
            project.absolute(),
            environment,
            digest=digest,
            source=source,
            image=image,
            github=github,
            held=credentials,
        )
    if not proposal.commit:
        _err.print(
            f"{environment} runs {proposal.image}@{proposal.digest} already: nothing to propose"
        )
        return
    where = proposal.pull_request or f"branch {proposal.branch}"
    typer.echo(f"proposed {environment}: {proposal.image}@{proposal.digest} ({where})")
    step_output(branch=proposal.branch, commit=proposal.commit, pull_request=proposal.pull_request)


@deploy_app.command("status")
def deploy_status_command(
    project: Project = Path("."),
    labels: Annotated[
        bool, typer.Option(help="Read each image's release and model from its registry.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """What each environment runs: digest, release, model version, and when it was promoted."""
    found = deploy_status(project.absolute(), labels=labels)
    if as_json:
        typer.echo(json.dumps([status.as_json() for status in found], indent=2))
        return
    show_deploy_status(found, Console())


@app.command()
def adopt(
    path: Annotated[Path, typer.Argument(help="The repo to bring under management.")],
    src: Annotated[str, typer.Option(help="The platform repo.")] = PLATFORM_URL,
    to: Annotated[str | None, typer.Option(help="Release to adopt (default: the latest).")] = None,
    data: Annotated[
        list[str] | None,
        typer.Option("--data", "-d", help="An answer as NAME=VALUE (wins over what is mapped)."),
    ] = None,
    defaults: Annotated[
        bool, typer.Option(help="Take the default for every question left unanswered.")
    ] = False,
    branch: Annotated[str, typer.Option(help="The branch the adoption goes on.")] = "paved/adopt",
    lock: Annotated[bool, typer.Option(help="Run `uv lock` when the merge is clean.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Bring an existing repo onto the template, on a new branch, merging every file.

    Answers come from the repo (pyproject, setup files, .cruft.json, .python-version,
    .dvc/config), then --data, then copier's questions. Files both the repo and the template
    have are merged; conflicts are marked and listed. Exit codes: 0 adopted (committed on
    the branch), 3 conflicts to resolve (the merge is in progress on the branch), 1 refused.
    """
    report = adopt_project(
        path,
        src=src,
        to=to,
        data=_parse_data(data or []),
        branch=branch,
        defaults=defaults,
        lock=lock,
    )
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
        raise typer.Exit(report.exit_code)
    show_adopt(report, _err)
    raise typer.Exit(report.exit_code)


@app.command()
def update(
    path: Annotated[Path, typer.Argument(help="The team repo.")] = Path("."),
    to: Annotated[
        str | None, typer.Option(help="Release to update to (default: the latest).")
    ] = None,
    lock: Annotated[bool, typer.Option(help="Re-lock the platform packages.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Update a team repo to a platform release; re-lock; report conflicts.

    Exit codes: 0 updated (or already current), 3 updated with conflicts to resolve,
    1 refused or failed (the repo is left as it was).
    """
    try:
        report = update_project(path, to=to, lock=lock)
    except PavedError as exc:
        if not as_json:
            raise
        # A refusal is a report too, for the scripts that read it.
        typer.echo(json.dumps({"project": str(path), "status": "failed", "reason": str(exc)}))
        raise typer.Exit(ExitCode.FAILED) from exc
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        show_update(report, _err)
    raise typer.Exit(report.exit_code)


@app.command()
def check(
    path: Annotated[Path, typer.Argument(help="The team repo.")] = Path("."),
    output: Annotated[
        str, typer.Option("--format", help="rich (a table), json or html (repo-review's).")
    ] = "rich",
    select: Annotated[
        list[str] | None, typer.Option(help="Run only these checks or prefixes (e.g. PV,GH).")
    ] = None,
    ignore: Annotated[
        list[str] | None, typer.Option(help="Skip these checks or prefixes (e.g. PC).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="Show only failures and the score.")] = False,
) -> None:
    """Check a repo against the Paved standard (PV...) and every installed repo-review plugin.

    [tool.repo-review] in the repo's pyproject selects and ignores checks (an ignore with
    a reason is listed as skipped). Score: passed / (passed + failed). Exit code 1 when a
    check fails.
    """
    if output not in {"rich", "json", "html"}:
        raise PavedError(f"--format {output!r}: choose rich, json or html")
    report = check_repo(path, select=_ids(select), ignore=_ids(ignore))
    if output == "json":
        typer.echo(json.dumps(report.as_dict(), indent=2))
    elif output == "html":
        typer.echo(report.as_html())
    else:
        show_check(report, Console(), quiet=quiet)
    raise typer.Exit(ExitCode.FAILED if report.failed else ExitCode.OK)


def _ids(values: list[str] | None) -> frozenset[str]:
    """Check IDs or prefixes, repeated or comma-separated (as repo-review takes them)."""
    return frozenset(part.strip() for value in values or () for part in value.split(",") if part)


@ci_app.command("verify")
def ci_verify(
    only: Annotated[list[str] | None, typer.Option(help="Run only this step (repeatable).")] = None,
    project: Project = Path("."),
) -> None:
    """The standard (paved check), lint, format, tests, `dvc repro`, `bentoml build`, types.

    The type check (mypy) runs beside the others from the start and is reported last.
    """

    def report(result: StepResult) -> None:
        mark = "[green]ok[/]" if result.ok else "[bold red]FAILED[/]"
        _err.print(f"{mark} {result.name} ({result.seconds:.1f}s)")
        if not result.ok:
            _err.print(escape(result.output[-6000:]), highlight=False, soft_wrap=True)

    results = verify(project.absolute(), only=only, report=report)
    if not all(result.ok for result in results):
        raise typer.Exit(ExitCode.FAILED)


@ci_app.command("drift")
def ci_drift(
    log: Annotated[
        str, typer.Option(help="The prediction log: a folder, or an fsspec URL (s3://...).")
    ] = "logs/predictions",
    since_hours: Annotated[
        float | None, typer.Option(help="Only the log's rows this many hours old or newer.")
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(help="Labels sent back by prediction id: judge accuracy too (feedback)."),
    ] = None,
    project: Project = Path("."),
) -> None:
    """The monitoring run: drift of the prediction log, and accuracy from labels.

    Exit 1 when a check failed, 2 when one could not judge (the step output `state`: passed,
    failed or not judged). Gets the training table and the
    champion (`dvc pull`, else `dvc repro evaluate`), runs `paved-ml drift` (and `paved-ml
    feedback LABELS`), writes reports/alert.json for the alert job, and in GitHub Actions
    writes the verdicts to the step summary.
    """
    result = drift_report(
        project.absolute(),
        log=log,
        since_hours=since_hours,
        labels=labels or None,
        summary_file=summary_file(),
    )
    typer.echo(result.output.rstrip())
    state = {0: "passed", 1: "failed"}.get(result.returncode, "not judged")
    step_output(state=state)
    raise typer.Exit(result.returncode)


@monitor_app.command("alert")
def monitor_alert(
    github: Annotated[
        str, typer.Option(help="OWNER/NAME: the repository's issues (GITHUB_TOKEN).")
    ],
    run_url: Annotated[str, typer.Option(help="The monitoring run's page.")],
    alert_file: Annotated[Path, typer.Option(help="The monitoring run's alert.json.")] = ALERT_FILE,
    report_url: Annotated[str, typer.Option(help="The report artifact's page.")] = "",
    project: Project = Path("."),
) -> None:
    """Open, update or close the model's monitoring issue from a monitoring run's verdicts.

    Reads the run's alert file and the repo's model name; runs none of the repo's code.
    PAVED_ALERT_WEBHOOK, if set, gets a Slack-compatible message when the issue changes.
    """
    outcome = alert(
        alert_file,
        repository=github,
        model=TeamRepo(project).model_name,
        run_url=run_url,
        report_url=report_url,
        webhook=os.environ.get("PAVED_ALERT_WEBHOOK", ""),
    )
    sent = " (and the webhook)" if outcome.webhook else ""
    typer.echo(f"{outcome.message}{sent}")


@ci_app.command("storage-login")
def ci_storage_login(
    cloud: Annotated[str, typer.Option(help="Where the data is: aws, gcp or azure.")] = "aws",
) -> None:
    """An hour's access to the repo's data, from the job's OIDC token: never a stored key.

    For the DVC remote and the prediction log, handed to the job's later steps, masked
    (outside a job: `export` lines, for eval). aws: assumes PAVED_AWS_ROLE_ARN and hands over
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. gcp: exchanges the token
    at PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER (as PAVED_GCP_SERVICE_ACCOUNT, if set) and hands
    over GOOGLE_APPLICATION_CREDENTIALS, a file holding the access token. azure: signs in as
    PAVED_AZURE_CLIENT_ID (tenant PAVED_AZURE_TENANT_ID) and hands over a SAS for the
    container PAVED_AZURE_CONTAINER of PAVED_AZURE_STORAGE_ACCOUNT, as
    AZURE_STORAGE_CONNECTION_STRING. The job needs `permissions: id-token: write`.
    """
    login = storage_credentials(cloud=cloud, env=os.environ)
    for value in login.masks:
        mask(value)
    export_env(login.secrets)
    export_env(login.settings, secret=False)
    _err.print(f"storage-login: {login.what}")


@ci_app.command("retrain")
def ci_retrain(project: Project = Path(".")) -> None:
    """Retrain: ingest, `dvc repro` and the fair gate against the champion the repo serves.

    The run's registry is made for it (seeded with models/champion): the team's tracking
    server is never touched. When the challenger wins, data and models go to the DVC remote
    and reports/retrain/ holds the pull request's patch and body (`paved retrain propose`);
    when it loses, the output says why. Sets the step output `promoted` (true or false).
    """
    result = run_retrain(project.absolute(), summary_file=summary_file())
    _err.print(escape(result.output[-6000:]), highlight=False, soft_wrap=True)
    typer.echo(f"retrain: {result.message}")
    step_output(promoted=str(result.promoted).lower())


@retrain_app.command("propose")
def retrain_propose(
    handed: Annotated[
        Path, typer.Option(help="What the retraining job handed on (its reports/retrain).")
    ] = RETRAIN_DIR,
    github: Annotated[
        str | None,
        typer.Option(help="OWNER/NAME: open or update the pull request there (GITHUB_TOKEN)."),
    ] = None,
    project: Project = Path("."),
) -> None:
    """Open (or update) the model's one retraining pull request from the job's patch.

    The patch may change dvc.lock, metrics.json and docs/model-card.md only. One commit on
    paved/retrain-<model>, from the current commit, pushed to origin (never the default
    branch). Runs none of the repo's code.
    """
    with held() as credentials:
        proposed = propose_retrain(
            project.absolute(), handed=handed.absolute(), github=github, held=credentials
        )
    if not proposed.commit:
        _err.print("the patch changes nothing here: nothing to propose")
        return
    where = proposed.pull_request or f"branch {proposed.branch}"
    typer.echo(f"proposed the retrained champion: {where}")
    step_output(branch=proposed.branch, commit=proposed.commit, pull_request=proposed.pull_request)


@ci_app.command("image")
def ci_image(
    project: Project = Path("."),
    registry: Registry = None,
    image_name: ImageName = None,
    base_image: Annotated[
        str | None,
        typer.Option(
            help="Base image with the repo's Python (default: distroless Python for 3.11, "
            "else python:<version>-slim)."
        ),
    ] = None,
    push: Annotated[bool, typer.Option(help="Push every tag and print the digest.")] = False,
    tls_verify: TlsVerify = True,
    builder: Builder = None,
    archive: Annotated[
        Path | None,
        typer.Option(help="Also write the image to this OCI archive (for a separate push)."),
    ] = None,
) -> None:
    """Build the service image from the bento (and push it, or write it to an archive)."""
    build = image_build_from_repo(
        project.absolute(), registry=registry, image_name=image_name, base_image=base_image
    )
    digest = build_and_push(
        build,
        push=push,
        builder=builder,
        tls_verify=tls_verify,
        archive=archive.absolute() if archive else None,
    )
    for ref in build.refs:
        typer.echo(f"built {ref}")
    if push and digest:
        _pushed(build.image, digest)
    elif archive and digest:
        typer.echo(f"archived {build.image}@{digest} in {archive}")
        step_output(digest=digest, image=build.image)


@ci_app.command("push")
def ci_push(
    project: Project = Path("."),
    registry: Registry = None,
    image_name: ImageName = None,
    tls_verify: TlsVerify = True,
    builder: Builder = None,
    archive: Annotated[
        Path | None,
        typer.Option(help="Push the image in this OCI archive (from paved ci image --archive)."),
    ] = None,
    digest: Annotated[
        str | None,
        typer.Option(help="With --archive: the digest the build reported; it must match."),
    ] = None,
) -> None:
    """Push the tags `paved ci image` built for this commit, and print the digest.

    A release builds in one job and pushes in another: the build job, which runs the repo's
    code, holds no credential and no write permission; this command, in the push job, runs
    no repository code and pushes exactly the archived image (skopeo, digest preserved).
    """
    build = image_build_from_repo(project.absolute(), registry=registry, image_name=image_name)
    if archive:
        digest = push_archive(
            build, archive.absolute(), expected_digest=digest, tls_verify=tls_verify
        )
    else:
        digest = push_image(build, builder=builder, tls_verify=tls_verify)
    _pushed(build.image, digest)


@ci_app.command("login")
def ci_login(
    registry: Registry = None,
    project: Project = Path("."),
    tls_verify: TlsVerify = True,
    builder: Builder = None,
    cloud: Annotated[
        str | None,
        typer.Option(help="aws, gcp or azure: OIDC login (default: found from the host)."),
    ] = None,
) -> None:
    """Log in to the image registry with the CI job's credentials (never stored in the repo).

    ghcr.io: the job's token. ECR, Artifact Registry, ACR: the job's OIDC token, traded for
    a short-lived password of the identity named by PAVED_AWS_ROLE_ARN, by
    PAVED_GCP_WORKLOAD_IDENTITY_PROVIDER (and PAVED_GCP_SERVICE_ACCOUNT), or by
    PAVED_AZURE_CLIENT_ID and PAVED_AZURE_TENANT_ID. Any other registry, or a laptop:
    REGISTRY_USERNAME and REGISTRY_PASSWORD.
    """
    target = registry or image_build_from_repo(project.absolute()).image
    _err.print(login(target, builder=builder, tls_verify=tls_verify, cloud=cloud))


def _pushed(image: str, digest: str) -> None:
    """Say what was pushed, on stdout and as the step's outputs."""
    typer.echo(f"pushed {image}@{digest}")
    step_output(digest=digest, image=image)


def _parse_data(pairs: list[str]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise PavedError(f"--data {pair!r}: expected NAME=VALUE")
        answers[name] = value
    return answers


def main() -> None:
    """Entry point of the `paved` script: the one place a PavedError becomes a message.

    Every command lets the package's errors through; here they become one line on stderr
    and exit code 1, never a traceback.
    """
    try:
        app()
    except PavedError as exc:
        _err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(ExitCode.FAILED)
