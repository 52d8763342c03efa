"""`paved status` over a folder tree, a manifest of git URLs and a GitHub organisation.

Team repos are generated at two throwaway releases; remotes are bare clones; GitHub is a
loopback stand-in of the endpoints used (tests/lib/fake_github.py), stopped by PID.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paved.fleet.status as status_module
import pytest
from paved.fleet import fleet_status

from ci.golden_path import generate, run, tool_env
from ci.snapshot import GIT_IDENTITY
from ci.throwaway import two_releases
from tests.lib.fake_github import serving
from tests.lib.helpers import mlflow_server, paved, seed_model

pytestmark = pytest.mark.update


class Fleet:
    """A folder of team repos: two at v0.1.0 (one with a pending update branch), one at
    v0.2.0, one whose answers file names no release, and a folder that is no team repo."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env


def new(env: dict[str, str], dest: Path, release: str, team: str) -> Path:
    answers = {"project_name": dest.name.title(), "team": team}
    return generate(dest, env, answers, vcs_ref=release, lock=False)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    platform = tmp_path_factory.mktemp("releases") / "paved"
    two_releases(platform)
    env = {**tool_env(platform), **GIT_IDENTITY}
    root = tmp_path_factory.mktemp("fleet")
    (root / "growth").mkdir()
    new(env, root / "growth" / "churn", "v0.1.0", "growth")
    pending = new(env, root / "growth" / "upsell", "v0.1.0", "growth")
    run(["git", "branch", "paved/update-v0.2.0"], pending, env)
    new(env, root / "risk", "v0.2.0", "risk")
    broken = new(env, root / "legacy", "v0.1.0", "legacy")
    answers = broken / ".copier-answers.yml"
    answers.write_text(answers.read_text().replace("_commit: v0.1.0\n", ""))
    (root / "notes").mkdir()
    (root / "notes" / "README.md").write_text("not a team repo\n")
    return Fleet(root, env)


def rows_of(done: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(done.stdout)["repos"]}


def test_status_of_a_folder_tree(fleet: Fleet) -> None:
    done = paved(fleet.env, "status", str(fleet.root), "--json")
    assert done.returncode == 1, done.stderr  # some repos are behind
    rows = rows_of(done)
    assert set(rows) == {"growth/churn", "growth/upsell", "risk", "legacy"}
    churn, upsell, risk = rows["growth/churn"], rows["growth/upsell"], rows["risk"]
    assert (churn["current"], churn["latest"], churn["behind"]) == ("v0.1.0", "v0.2.0", 1)
    assert churn["source"] == "https://github.com/acme/paved.git"
    assert churn["pending"] == "" and upsell["pending"] == "branch paved/update-v0.2.0"
    assert (risk["current"], risk["behind"], risk["pending"]) == ("v0.2.0", 0, "")
    assert "_commit" in rows["legacy"]["error"]
    # The score is paved check's; unlocked renders fail PV002/PV003 only.
    assert all(0 < row["score"] < 100 for row in (churn, upsell, risk))

    table = paved({**fleet.env, "COLUMNS": "200"}, "status", str(fleet.root), "--no-check")
    assert table.returncode == 1
    for text in ("growth/churn", "v0.2.0", "branch paved/update-v0.2.0", "_commit"):
        assert text in table.stdout, text


def test_status_knows_each_repo_s_model_from_the_tracking_server(
    fleet: Fleet, tmp_path: Path
) -> None:
    """Champion, metric over the versions, aliases, age and monitoring: from a real server."""
    store = f"sqlite:///{tmp_path / 'server.db'}"  # the store `mlflow_server` serves
    seed_model(
        store,
        project="churn",
        model="churn",
        figures=[0.8, 0.95, 0.9],
        deployed={"staging": "2", "production": "1"},
        monitoring=[("drift", False), ("accuracy", False), ("drift", True)],
        root=tmp_path,
    )
    seed_model(store, project="upsell", model="upsell", figures=[0.7], root=tmp_path)
    # upsell's version as paved-ml registered it before it tagged versions with the gate's
    # figure: status reads that from the training run instead.
    from mlflow import MlflowClient

    for key in ("paved.gate.metric", "paved.gate.value"):
        MlflowClient(store, store).delete_model_version_tag("upsell", "1", key)
    seed_model(store, project="fraud", model="fraud", figures=[0.6], root=tmp_path)  # not ours
    with mlflow_server(tmp_path) as url:
        done = paved(
            fleet.env, "status", str(fleet.root), "--no-check", "--json", "--tracking", url
        )
        table = paved(
            {**fleet.env, "COLUMNS": "250", "MLFLOW_TRACKING_URI": url},
            *("status", str(fleet.root), "--no-check"),
        )
        # The dashboard, with the rollout's record: churn's update failed.
        record = tmp_path / "v0.2.0.json"
        record.write_text(
            json.dumps(
                {
                    "growth/churn": {
                        "outcome": "failed",
                        "reason": "conflict",
                        "to_release": "v0.2.0",
                    }
                }
            )
        )
        insights = paved(
            fleet.env,
            *("status", str(fleet.root), "--no-check", "--tracking", url, "--format", "backstage"),
        )
        page = tmp_path / "fleet.html"
        html = paved(
            fleet.env,
            *("status", str(fleet.root), "--no-check", "--tracking", url),
            *("--format", "html", "--output", str(page), "--record", str(record)),
        )
    assert done.returncode == 1 and done.stdout, done.stderr  # behind, as without models
    report, rows = json.loads(done.stdout), rows_of(done)
    churn = rows["growth/churn"]["model"]
    assert (churn["name"], churn["versions"], churn["champion"]) == ("churn", 3, "2")
    assert churn["metric"] == "f1_macro" and churn["value"] == pytest.approx(0.95)
    assert churn["history"] == pytest.approx([0.8, 0.95, 0.9])  # oldest first
    assert (churn["staging"], churn["production"]) == ("2", "1")
    assert 0 <= churn["champion_age_days"] < 1
    assert churn["monitoring"]["drift"]["state"] == "failed"  # the latest of two drift runs
    assert churn["monitoring"]["accuracy"]["state"] == "passed"
    upsell = rows["growth/upsell"]["model"]
    assert (upsell["champion"], upsell["value"], upsell["monitoring"]) == ("1", 0.7, {})
    assert rows["risk"]["model"]["versions"] == 0 and rows["risk"]["model"]["error"] == ""
    assert rows["legacy"]["model"] is None  # an unreadable repo asks the server nothing

    # Bounded: for the whole fleet, one search of registered models (aliases, monitoring
    # tags) and one of versions (gate tags); for upsell's untagged version, one of
    # experiments and one of runs by id. Each answer is a page here.
    tracking = report["tracking"]
    assert (tracking["models"], tracking["calls"]) == (3, 4)

    # The table (its server from MLFLOW_TRACKING_URI): the model columns and the cost line.
    assert table.returncode == 1, table.stderr
    for text in ("v2 f1_macro=0.95", "staging v2, production v1", "drift failed", "accuracy"):
        assert text in table.stdout, text
    assert "not registered" in table.stdout
    assert "models: 3 read from http://127.0.0.1:" in table.stdout
    assert "4 calls (1.33 per repo)" in table.stdout

    # Backstage Tech Insights: one entity per readable repo, each fact of its schema's type.
    answer = json.loads(insights.stdout)
    entities = {item["entity"]["name"]: item for item in answer["facts"]}
    assert set(entities) == {"churn", "upsell", "risk"}  # legacy is unreadable: left out
    churn_facts = entities["churn"]["facts"]
    assert entities["churn"]["entity"] == {
        "namespace": "default",
        "kind": "component",
        "name": "churn",
    }
    assert (churn_facts["pavedRelease"], churn_facts["pavedReleasesBehind"]) == ("v0.1.0", 1)
    assert (churn_facts["modelChampionVersion"], churn_facts["modelProductionVersion"]) == (
        "2",
        "1",
    )
    assert churn_facts["monitoringDrift"] == "failed" and churn_facts["modelMetricValue"] == 0.95
    assert (
        "modelName" in entities["risk"]["facts"]
        and "modelChampionVersion" not in entities["risk"]["facts"]
    )
    types = {"string": str, "integer": int, "float": float, "boolean": bool}
    for item in answer["facts"]:
        for fact, value in item["facts"].items():
            assert isinstance(value, types[answer["schema"][fact]["type"]]), (fact, value)

    assert html.returncode == 1 and f"wrote {page}" in html.stderr, html.stderr
    text = page.read_text()
    assert 'data-state="failed update"' in text and 'title="conflict">failed: v0.2.0<' in text
    assert '<svg class="spark"' in text  # churn's three versions
    assert 'data-state="unreadable"' in text  # legacy
    assert not re.search(r"\b(src|href)=", text)  # nothing fetched: no CDN, no server


def test_status_lists_each_template_source_s_releases_once(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = status_module.release_commits

    def counted(source: str, **kwargs: object) -> dict[str, str]:
        calls.append(source)
        return real(source)

    monkeypatch.setattr(status_module, "release_commits", counted)
    for key, value in fleet.env.items():
        monkeypatch.setenv(key, value)
    report = fleet_status(str(fleet.root), check=False)
    assert len(report.repos) == 4
    assert calls == ["https://github.com/acme/paved.git"]
    assert all(row.score is None for row in report.repos)


def test_status_of_a_manifest_of_remotes(fleet: Fleet, tmp_path: Path) -> None:
    remotes = tmp_path / "remotes"
    for name in ("churn", "risk"):
        source = fleet.root / ("growth/churn" if name == "churn" else "risk")
        run(
            ["git", "clone", "--quiet", "--bare", str(source), str(remotes / f"{name}.git")],
            tmp_path,
            fleet.env,
        )
    manifest = tmp_path / "fleet.yml"
    manifest.write_text(
        f"- {(remotes / 'churn.git').as_uri()}\n"
        f"- url: {(remotes / 'risk.git').as_uri()}\n  branch: main\n  name: risk-model\n"
        f"- {(tmp_path / 'gone.git').as_uri()}\n"
    )
    rows = rows_of(paved(fleet.env, "status", str(manifest), "--json"))
    assert (rows["churn"]["current"], rows["churn"]["behind"]) == ("v0.1.0", 1)
    assert rows["churn"]["score"] is not None
    assert (rows["risk-model"]["current"], rows["risk-model"]["behind"]) == ("v0.2.0", 0)
    assert rows["gone"]["error"].startswith("cannot clone")


@pytest.fixture
def github(fleet: Fleet, tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """The stand-in serving organisation `acme` with churn (an open update PR) and risk."""
    repos = []
    for name, source in (("churn", "growth/churn"), ("risk", "risk"), ("docs", "notes")):
        bare = tmp_path / f"{name}.git"
        if name == "docs":
            run(["git", "init", "--quiet", "--bare", str(bare)], tmp_path, fleet.env)
        else:
            run(
                ["git", "clone", "--quiet", "--bare", str(fleet.root / source), str(bare)],
                tmp_path,
                fleet.env,
            )
        repos.append(
            {
                "full_name": f"acme/{name}",
                "clone_url": bare.as_uri(),
                "default_branch": "main",
                "archived": name == "docs",
                "bare": str(bare),
            }
        )
    pull = {"repo": "acme/churn", "number": 7, "state": "open", "head": "paved/update-v0.2.0"}
    state = tmp_path / "github.json"
    alerts = [  # churn's model drifts: one open alert, one closed; risk's issue is no alert
        {"repo": "acme/churn", "number": n, "state": s, "labels": [{"name": "paved-monitoring"}]}
        for n, s in ((3, "open"), (2, "closed"))
    ] + [{"repo": "acme/risk", "number": 1, "state": "open", "labels": [{"name": "bug"}]}]
    state.write_text(
        json.dumps({"token": "fleet-token", "repos": repos, "pulls": [pull], "issues": alerts})
    )
    log = tmp_path / "github.log"
    with serving(state, log) as api_url:
        env = {**fleet.env, "PAVED_GITHUB_API": api_url}
        yield env, log


def test_status_of_a_github_organisation(github: tuple[dict[str, str], Path]) -> None:
    env, log = github
    refused = paved(env, "status", "github:acme", "--no-check")
    assert refused.returncode == 1 and "PAVED_GITHUB_TOKEN" in refused.stderr

    env = {**env, "PAVED_GITHUB_TOKEN": "fleet-token"}
    done = paved(env, "status", "github:acme", "--no-check", "--json")
    rows = rows_of(done)
    assert set(rows) == {"churn", "risk"}  # archived repos are left out
    assert (rows["churn"]["behind"], rows["churn"]["pending"]) == (1, "pull request #7")
    assert rows["risk"]["behind"] == 0
    assert (rows["churn"]["alerts"], rows["risk"]["alerts"]) == (1, 0)
    paths = [json.loads(line)["path"] for line in log.read_text().splitlines()]
    assert "/repos/acme/churn/contents/.copier-answers.yml" in paths  # read, not cloned

    scored = rows_of(paved(env, "status", "github:acme", "--json"))
    assert scored["churn"]["score"] is not None  # from a shallow clone
