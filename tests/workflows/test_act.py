"""CI tier: a generated repo's own ci.yml and release.yml run under act.

act runs the jobs on this host and serves the platform's reusable workflows from the
throwaway release (tests/lib/act_runner.py). The push event carries a hostile commit message:
no workflow may execute it. The team pushes to its own registry (not ghcr.io, not a
cloud), which asks for the password given as the repository secret REGISTRY_PASSWORD. The
tests run as if this repo's own CI were running them (a foreign GITHUB_SHA and
GITHUB_ACTIONS=true around them).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from ci.base_image import DISTROLESS_IMAGE, ensure_base_image
from ci.golden_path import DEMO_ANSWERS, IRIS_ROW, generate, run, serve_image, tool_env
from ci.oci_registry import Registry, local_registry
from ci.snapshot import GIT_IDENTITY, PLATFORM_URL
from tests.lib.act_runner import Team
from tests.lib.fake_github import serving
from tests.lib.helpers import PROTECT_MAIN, mlflow_server

pytestmark = [pytest.mark.workflows, pytest.mark.usefixtures("foreign_ci_context")]

PUSHER, PASSWORD = "paved-ci", "registry-secret-3c1f9a"
GITHUB_TOKEN = "gh-stand-in-token-5d2e"
#: The output of the module's release that went on to staging, for the test of what follows.
LAST_RELEASE: dict[str, str] = {}
#: An origin with a credential in it, as a careless clone has: no label may carry it.
ORIGIN = "https://ci-bot:origin-token-77e1@github.com/acme/iris-demo.git"

#: A pipeline stage gone bad: it reads what secrets it can see and asks the runner to source
#: its script in every later bash step (BASH_ENV through $GITHUB_ENV).
HOSTILE = """

def _take_over() -> None:
    import json as _json
    import os as _os

    if not _os.environ.get("GITHUB_ENV"):
        return
    wanted = (
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "REGISTRY_PASSWORD",
        "GITHUB_TOKEN",
    )
    seen = {k: v for k, v in _os.environ.items() if k in wanted and v}
    with open("{work}/seen.json", "w") as handle:
        _json.dump(seen, handle)
    with open(_os.environ["GITHUB_ENV"], "a") as handle:
        handle.write("BASH_ENV={work}/evil.sh\\n")


_take_over()
"""
EVIL = '#!/bin/sh\necho "${GITHUB_JOB:-?}" >> "{work}/sourced-in"\nenv >> "{work}/stolen.env"\n'


@pytest.fixture(scope="module")
def team(platform: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Team:
    clone, sha = platform
    work = tmp_path_factory.mktemp("act")
    # buildah's logins go to a file of this test's, not the machine's.
    authfile = work / "auth.json"
    authfile.write_text('{"auths": {}}')
    env = tool_env(clone, REGISTRY_AUTH_FILE=str(authfile))
    answers = {
        **DEMO_ANSWERS,
        "dvc_remote_url": str(work / "remote"),
        "container_registry": "registry.acme.example/ml",
    }
    repo = generate(work / "iris-demo", env, answers)
    run(["git", "remote", "add", "origin", ORIGIN], repo, env)
    # Pushes (the deploy job's branches) go to a bare repo that refuses pushes to main.
    bare = work / "iris-demo.git"
    run(["git", "clone", "--quiet", "--bare", str(repo), str(bare)], work, env)
    (bare / "hooks" / "pre-receive").write_text(PROTECT_MAIN)
    (bare / "hooks" / "pre-receive").chmod(0o755)
    run(["git", "remote", "set-url", "--push", "origin", str(bare)], repo, env)
    return Team(repo, env, clone, sha, work)


@pytest.fixture(scope="module")
def github(team: Team) -> Iterator[Path]:
    """The GitHub stand-in every run of the module's workflows talks to; its state file."""
    state = team.work / "github.json"
    remote = {"full_name": "acme/iris-demo", "default_branch": "main"}
    state.write_text(json.dumps({"token": GITHUB_TOKEN, "repos": [remote], "pulls": []}))
    with serving(state, team.work / "github.log") as api:
        team.extra = [
            "--env",
            f"PAVED_GITHUB_API={api}",
            "--secret",
            f"GITHUB_TOKEN={GITHUB_TOKEN}",
        ]
        yield state
        team.extra = []


def test_ci_workflow_succeeds_under_act(team: Team) -> None:
    code, output = team.act("ci.yml")
    assert code == 0, output[-6000:]
    assert "Job succeeded" in output
    for step in ("standard", "lint", "format", "types", "tests", "pipeline", "bento"):
        assert re.search(rf"ok {step} \(", output), f"step {step} did not run"
    assert not team.canary.exists(), "a commit message was executed"


@pytest.fixture(scope="module")
def registry(github: Path) -> Iterator[Registry]:
    with local_registry(users={PUSHER: PASSWORD}) as running:
        yield running


def release(
    team: Team,
    registry: Registry,
    *extra: str,
    ref: str = "refs/heads/main",
    override: bool = True,
    deploy: bool = False,
) -> str:
    """Run the generated release.yml against the registry; return act's output (any code).

    `override`: name the registry with the repository variable PAVED_REGISTRY; without it
    the repo's pyproject must already name it. `deploy`: let the release go on to propose
    staging (PAVED_DEPLOY_STAGING pauses it otherwise).
    """
    base = ensure_base_image(DISTROLESS_IMAGE)
    variable = ["--var", f"PAVED_REGISTRY={registry.host}/acme"] if override else []
    variable += [] if deploy else ["--var", "PAVED_DEPLOY_STAGING=false"]
    _, output = team.act(
        "release.yml",
        *variable,
        "--var",
        f"PAVED_BASE_IMAGE={base}",
        "--var",
        "PAVED_REGISTRY_TLS_VERIFY=false",
        "--var",
        f"PAVED_REGISTRY_USERNAME={PUSHER}",
        "--secret",
        f"REGISTRY_PASSWORD={PASSWORD}",
        *extra,
        ref=ref,
    )
    if deploy:
        LAST_RELEASE["output"] = output
    return output


def pushed(output: str, registry: Registry) -> tuple[str, str] | None:
    match = re.search(
        rf"pushed ({re.escape(registry.host)}/acme/iris-demo)@(sha256:[0-9a-f]{{64}})", output
    )
    return (match[1], match[2]) if match else None


def test_a_push_to_a_feature_branch_does_not_release(team: Team, registry: Registry) -> None:
    output = release(team, registry, ref="refs/heads/feature")
    assert "Build the image" not in output and pushed(output, registry) is None, output[-3000:]


def test_without_a_champion_in_the_remote_the_release_can_refuse_to_train(
    team: Team, registry: Registry
) -> None:
    output = release(team, registry, "--var", "PAVED_TRAIN_IF_PULL_FAILS=false")
    assert "dvc pull models/champion failed: the DVC remote is out of reach" in output
    assert "training the champion" not in output
    assert pushed(output, registry) is None, "a release without its champion pushed an image"


def test_release_builds_apart_from_its_push_and_the_image_serves(
    team: Team, registry: Registry
) -> None:
    """The build job runs the repo's code (here a hostile stage); the push job runs none.

    The stage sees no token and no registry password, and the BASH_ENV it plants through
    $GITHUB_ENV is sourced by no step of the push job, which logs in and pushes exactly the
    archived image.
    """
    work = team.work
    (work / "evil.sh").write_text(EVIL.replace("{work}", str(work)))
    prepare = team.repo / "src" / "iris_demo" / "pipeline" / "prepare.py"
    original = prepare.read_text()
    prepare.write_text(original + HOSTILE.replace("{work}", str(work)))
    # No PAVED_REGISTRY: the release pushes where pyproject's [tool.paved] image says.
    pyproject = team.repo / "pyproject.toml"
    project = pyproject.read_text()
    pyproject.write_text(project.replace("registry.acme.example/ml/", f"{registry.host}/acme/"))
    assert pyproject.read_text() != project
    run(["git", "commit", "--quiet", "-am", "prepare: a stage gone bad"], team.repo, team.env)
    try:
        output = release(team, registry, override=False, deploy=True)
    finally:
        prepare.write_text(original)
        pyproject.write_text(project)
        run(["git", "commit", "--quiet", "-am", "prepare: mended"], team.repo, team.env)

    assert "Job succeeded" in output, output[-6000:]
    assert not team.canary.exists(), "a commit message was executed"
    assert f"logged in to {registry.host} as {PUSHER}" in output
    # The generated repo never pushed to its DVC remote: the release says it trains instead.
    assert "training the champion from the shipped data" in output
    assert PASSWORD not in output, "the registry password reached the log"

    assert json.loads((work / "seen.json").read_text()) == {}, "the stage saw a secret"
    sourced = (work / "sourced-in").read_text().split() if (work / "sourced-in").exists() else []
    assert sourced and set(sourced) == {"build"}, f"the stage's BASH_ENV ran in {sourced}"
    stolen = (work / "stolen.env").read_text() if (work / "stolen.env").exists() else ""
    assert PASSWORD not in stolen and "ACTIONS_ID_TOKEN_REQUEST_TOKEN" not in stolen

    found = pushed(output, registry)
    assert found, output[-4000:]
    image, digest = found
    archived = re.search(r"archived \S+@(sha256:[0-9a-f]{64})", output)
    assert archived and archived[1] == digest, "the push job pushed another image than built"

    inspect = subprocess.run(
        ["skopeo", "inspect", "--config", "--tls-verify=false", f"docker://{image}@{digest}"],
        env=team.env,
        capture_output=True,
        text=True,
        check=True,
    )
    labels = json.loads(inspect.stdout)["config"]["Labels"]
    assert labels["org.opencontainers.image.source"] == "https://github.com/acme/iris-demo"
    assert (
        labels["org.opencontainers.image.revision"]
        == run(["git", "rev-parse", "HEAD~1"], team.repo, team.env).stdout.strip()
    )
    assert "origin-token" not in json.dumps(labels)

    try:
        with serve_image(f"{image}@{digest}", team.repo, team.env) as service:
            status, body = service.post("/predict", {"rows": [IRIS_ROW]})
            assert status == 200 and body["predictions"] == ["virginica"]
            status, body = service.post(
                "/predict", {"rows": [{**IRIS_ROW, "petal_length_cm": None}]}
            )
            assert status == 400
            assert ["rows", 0, "petal_length_cm"] in [e["loc"] for e in body["detail"]]
    finally:
        subprocess.run(["buildah", "rmi", "--force", f"{image}@{digest}"], capture_output=True)


def test_a_champion_in_the_remote_is_released_without_training(
    team: Team, registry: Registry
) -> None:
    run(["uv", "sync", "--frozen", "--quiet"], team.repo, team.env)
    run(["uv", "run", "--frozen", "dvc", "repro"], team.repo, team.env)
    run(["uv", "run", "--frozen", "dvc", "push"], team.repo, team.env)
    run(["git", "add", "--all"], team.repo, team.env)
    run(["git", "commit", "--quiet", "-m", "Champion trained and pushed"], team.repo, team.env)
    output = release(team, registry)
    assert "Job succeeded" in output, output[-6000:]
    assert "training the champion" not in output
    assert pushed(output, registry), output[-4000:]


def _next_steps(output: str) -> list[str]:
    """The commands copier's message after copy lists, as a user would type them."""
    block = output.split("Next steps:", 1)[1].split("\n\n", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_steps_copier_prints_lead_to_a_green_first_ci_run(team: Team, tmp_path: Path) -> None:
    """A plain `copier copy`, its printed steps up to the first commit, then that commit's CI
    as GitHub would see it (act in a fresh clone: nothing untracked comes along)."""
    answers = [arg for k, v in DEMO_ANSWERS.items() for arg in ("--data", f"{k}={v}")]
    dest = tmp_path / "churn"
    copy = [sys.executable, "-m", "copier", "copy", "--defaults", *answers, PLATFORM_URL, str(dest)]
    output = run(copy, tmp_path, team.env)
    steps = _next_steps(output.stdout + output.stderr)
    first_commit = next(i for i, step in enumerate(steps) if "git commit" in step)
    for step in steps[: first_commit + 1]:
        if not step.startswith("cd "):
            run(["bash", "-c", step], dest, {**team.env, **GIT_IDENTITY})
    pushed_tree = tmp_path / "pushed"
    run(["git", "clone", "--quiet", str(dest), str(pushed_tree)], tmp_path, team.env)
    first = Team(pushed_tree, team.env, team.clone, team.sha, tmp_path)
    code, log = first.act("ci.yml")
    assert code == 0, log[-6000:]
    assert re.search(r"ok tests \(", log), log[-3000:]

    # The same commit without its lock file: one line that says how to make it.
    run(["git", "rm", "--quiet", "uv.lock"], pushed_tree, team.env)
    run(["git", "commit", "--quiet", "-m", "no lock"], pushed_tree, {**team.env, **GIT_IDENTITY})
    code, log = first.act("ci.yml")
    assert code != 0
    assert "uv.lock is missing: run `uv lock` in the repo, commit uv.lock and push" in log, log[
        -6000:
    ]


def served_log(folder: Path, *, shifted: bool) -> tuple[Path, Path]:
    """A prediction log of 300 iris requests, with ids, and their true labels (labels.csv).

    Shifted, the petals grew (the drift to be found) and every answer says virginica (the
    labels disagree with a third of them); else the requests are iris itself, answered right.
    """
    import pandas as pd
    from paved_ml.prediction_log import LogSettings, PredictionLog
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = pd.concat([iris.frame, iris.frame], ignore_index=True)
    truth = iris.target_names[frame["target"].to_numpy()]
    columns = {name: frame.iloc[:, i].to_numpy() for i, name in enumerate(IRIS_ROW)}
    answers = list(truth)
    if shifted:
        columns["petal_length_cm"] = columns["petal_length_cm"] + 3.0
        columns["petal_width_cm"] = columns["petal_width_cm"] + 1.0
        answers = ["virginica"] * len(frame)
    ids = [f"{row:032x}-0" for row in range(len(frame))]
    log = PredictionLog(LogSettings(folder=folder), model_name="iris-demo", model_version="1")
    log.record(columns, answers, ids)
    log.close()
    labels = folder.parent / f"{folder.name}-labels.csv"
    pd.DataFrame({"prediction_id": ids, "species": truth}).to_csv(labels, index=False)
    return folder, labels


def test_monitoring_opens_one_issue_updates_it_and_a_clean_run_closes_it(
    team: Team, github: Path
) -> None:
    """drift.yml under act: a shifted log opens the model's issue (and posts to the webhook),
    a second shifted run, with labels the model gets wrong, updates it, a clean run closes it.
    The job that runs the repo's code holds no token; the alert job talks to the stand-in."""
    api = next(arg.split("=", 1)[1] for arg in team.extra if arg.startswith("PAVED_GITHUB_API="))
    hook = ["--secret", f"PAVED_ALERT_WEBHOOK={api}/hooks/ml-alerts"]

    def monitoring(log: Path, labels: Path | None = None) -> tuple[int, str]:
        variables = ["--var", f"PAVED_PREDICTION_LOG={log}"]
        if labels is not None:
            variables += ["--var", f"PAVED_LABELS={labels}"]
        return team.act("drift.yml", *variables, *hook, event="workflow_dispatch")

    shifted, wrong = served_log(team.work / "shifted-log", shifted=True)
    code, output = monitoring(shifted)
    assert code != 0, output[-6000:]
    assert "DRIFTED  petal_length_cm" in output and "DRIFTED  petal_width_cm" in output
    kept = team.work / "artifacts" / "drift-report"  # the folder's files, at the root
    assert json.loads((kept / "drift.json").read_text())["drifted"] is True
    assert (kept / "drift.html").stat().st_size > 10_000
    assert "opened https://github.invalid/acme/iris-demo/issues/" in output, output[-4000:]
    [issue] = json.loads(github.read_text())["issues"]
    assert issue["title"] == "Monitoring: iris-demo failed drift" and issue["state"] == "open"
    assert re.search(r"\| drift \| petal_length_cm \| [^|]+ \| 0\.05 \| [^|]+ \|", issue["body"])
    assert "/acme/iris-demo/actions/runs/" in issue["body"]

    code, output = monitoring(shifted, wrong)
    assert code != 0, output[-6000:]
    assert "under monitoring.min_f1_macro (0.85)" in output, output[-4000:]
    [issue] = json.loads(github.read_text())["issues"]  # the same issue, never a second
    assert issue["title"] == "Monitoring: iris-demo failed drift, accuracy"
    assert "| accuracy | f1_macro |" in issue["body"]
    assert issue["comments"][0].startswith("Still failing in [this run]")

    clean, right = served_log(team.work / "clean-log", shifted=False)
    code, output = monitoring(clean, right)
    assert code == 0, output[-6000:]
    [issue] = json.loads(github.read_text())["issues"]
    assert issue["state"] == "closed" and issue["comments"][-1].startswith("Passing again")
    hooks = json.loads(github.read_text())["webhooks"]
    assert [hook["payload"]["text"].split(": ")[1].split(" ")[0] for hook in hooks] == [
        "opened", "updated", "closed",
    ]  # fmt: skip
    assert GITHUB_TOKEN not in output


def overlay_digest(tree: Path | str, environment: str, *, bare: Path | None = None) -> str:
    """The digest `environment`'s overlay pins: in a checkout, or on a branch of `bare`."""
    path = f"deploy/overlays/{environment}/kustomization.yaml"
    if bare is None:
        text = (Path(tree) / path).read_text()
    else:
        text = run(["git", "show", f"{tree}:{path}"], bare, {}).stdout
    return str(yaml.safe_load(text)["images"][0]["digest"])


def test_a_release_proposes_staging_and_a_promotion_production_by_pull_request(
    team: Team, registry: Registry, github: Path
) -> None:
    """release.yml's deploy job opens the staging pull request (main is never pushed); after
    it is merged, promote.yml opens production's with staging's digest, then with an
    earlier one: a rollback. Each job runs under act, the pushes go to a bare repo that
    refuses main, the pull requests to the GitHub stand-in."""
    bare = team.work / "iris-demo.git"
    main = run(["git", "rev-parse", "main"], bare, {}).stdout
    head = run(["git", "rev-parse", "HEAD"], team.repo, {}).stdout.strip()
    # The module's hostile release went on to staging; run one here only when this test
    # runs alone.
    output = LAST_RELEASE.get("output") or release(team, registry, deploy=True)
    found = pushed(output, registry)
    assert found, output[-4000:]
    image, digest = found
    assert re.search(rf"proposed staging: {re.escape(image)}@{digest}", output), output[-3000:]
    assert overlay_digest("paved/deploy-staging", "staging", bare=bare) == digest
    pulls = json.loads(github.read_text())["pulls"]
    assert [(p["head"], p["base"]) for p in pulls] == [("paved/deploy-staging", "main")]
    assert run(["git", "rev-parse", "main"], bare, {}).stdout == main, "main was pushed to"

    # The staging pull request is merged (here, into the checkout act runs).
    run(["git", "fetch", "--quiet", str(bare), "paved/deploy-staging"], team.repo, team.env)
    run(["git", "merge", "--quiet", "--no-edit", "FETCH_HEAD"], team.repo, team.env)
    try:
        # What staging runs now, read from the overlay, git and the image's own labels.
        login = ["skopeo", "login", "--tls-verify=false", "-u", PUSHER, "--password-stdin"]
        subprocess.run([*login, registry.host], input=PASSWORD, text=True, env=team.env, check=True)
        env = {**team.env, "PAVED_REGISTRY_TLS_VERIFY": "false"}
        done = subprocess.run(
            [sys.executable, "-m", "paved", "deploy", "status", "--json"],
            cwd=team.repo, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        staging = next(row for row in json.loads(done.stdout) if row["environment"] == "staging")
        assert (staging["digest"], staging["note"]) == (digest, "")
        assert (staging["model_name"], staging["model_version"]) == ("iris-demo", "1")
        assert staging["release"] == "0.1.0" and staging["promoted"] and staging["commit"]

        # The merge reached main: deployed.yml gives that model version the alias staging
        # in the team's tracking server (champion is not touched).
        with mlflow_server(team.work) as tracking:
            server = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
            server.create_registered_model("iris-demo")
            server.create_model_version("iris-demo", "s3://models/iris-demo/1")
            code, output = team.act(
                "deployed.yml",
                *("--var", f"PAVED_REGISTRY={registry.host}/acme"),
                *("--var", "PAVED_REGISTRY_TLS_VERIFY=false"),
                *("--var", f"PAVED_REGISTRY_USERNAME={PUSHER}"),
                *("--secret", f"REGISTRY_PASSWORD={PASSWORD}"),
                *("--secret", f"MLFLOW_TRACKING_URI={tracking}"),
            )
            assert code == 0, output[-4000:]
            assert "staging: iris-demo v1 (was unset)" in output, output[-3000:]
            assert str(server.get_model_version_by_alias("iris-demo", "staging").version) == "1"
            assert PASSWORD not in output

        code, output = team.act("promote.yml", event="workflow_dispatch", inputs={"digest": ""})
        assert code == 0, output[-4000:]
        assert overlay_digest("paved/deploy-production", "production", bare=bare) == digest
        earlier = "sha256:" + "e" * 64
        code, output = team.act(
            "promote.yml", event="workflow_dispatch", inputs={"digest": earlier}
        )
        assert code == 0, output[-4000:]
        assert overlay_digest("paved/deploy-production", "production", bare=bare) == earlier
        pulls = json.loads(github.read_text())["pulls"]
        assert sorted(p["head"] for p in pulls) == [
            "paved/deploy-production",
            "paved/deploy-staging",
        ]
        assert run(["git", "rev-parse", "main"], bare, {}).stdout == main
    finally:
        run(["git", "reset", "--quiet", "--hard", head], team.repo, team.env)
