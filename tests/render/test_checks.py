"""`paved check`: each PV rule passes on a fresh render and fails on one broken in its way.

The fresh repo is made by `paved new` (rendered, locked, committed), once per module; each
case copies it and breaks exactly one thing, and then that rule, and only that rule of
the Paved family, fails. The same repo also passes Scientific Python's checks, or ignores
them with a reason that docs/decisions gives.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from paved.checks import check_repo
from paved.checks.lock import lock_drift
from paved.checks.rules import RULES
from paved.repo import platform_pins
from paved.template import new_project

from ci.golden_path import DEMO_ANSWERS
from ci.snapshot import ROOT

pytestmark = pytest.mark.render

PV = [rule.__name__ for rule in RULES]


@pytest.fixture(scope="module")
def fresh(platform: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("checks") / "iris-demo"
    return new_project(dest, data=DEMO_ANSWERS, defaults=True)


@pytest.fixture
def copy(fresh: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "iris-demo"
    shutil.copytree(fresh, dest, symlinks=True, ignore=shutil.ignore_patterns(".venv"))
    return dest


def results(repo: Path) -> dict[str, bool | None]:
    return {r.name: r.result for r in check_repo(repo).results}


def test_a_fresh_render_scores_100(fresh: Path) -> None:
    with warnings.catch_warnings():
        # repo-review warns (and copies every fixture again) when a check changed one:
        # reading the repo through the shared paved_repo fixture must not count as that.
        warnings.simplefilter("error")
        report = check_repo(fresh)
    assert report.failed == [] and report.score == 100.0
    assert set(PV) <= set(report.passed)
    assert {r.family for r in report.results} > {"paved", "general", "pyproject", "mypy", "github"}


def test_every_ignored_sp_check_has_a_reason_in_the_decisions(fresh: Path) -> None:
    ignored = tomllib.loads((fresh / "pyproject.toml").read_text())["tool"]["repo-review"]["ignore"]
    decision = (ROOT / "docs" / "decisions" / "0013-conformance-checks.md").read_text()
    for check, reason in ignored.items():
        assert reason.strip(), check
        assert re.search(rf"`{check}`", decision), f"{check} is ignored without a decision"
    skipped = {r.name: r.skip_reason for r in check_repo(fresh).results if r.result is None}
    assert all(skipped[name] for name in skipped if name in ignored)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def _answers_path(repo: Path) -> None:
    _edit(
        repo / ".copier-answers.yml",
        "_src_path: https://github.com/acme/paved.git",
        "_src_path: /home/someone/paved",
    )


def _one_pin_moved(repo: Path) -> None:
    path = repo / ".github" / "workflows" / "release.yml"
    text = path.read_text()
    sha = re.search(r"team-release.yml@([0-9a-f]{40})", text)[1]  # type: ignore[index]
    path.write_text(text.replace(sha, "1" * 40))


def _dependency_not_locked(repo: Path) -> None:
    _edit(
        repo / "pyproject.toml", '    "pandas>=2.2",\n', '    "pandas>=2.2",\n    "httpx>=0.27",\n'
    )


def _action_by_tag(repo: Path) -> None:
    (repo / ".github" / "workflows" / "docs.yml").write_text(
        "name: docs\non: [push]\npermissions: {}\njobs:\n  docs:\n    runs-on: ubuntu-latest\n"
        "    permissions:\n      contents: read\n    steps:\n"
        "      - uses: actions/setup-python@v5\n"
    )


def _write_permission(repo: Path) -> None:
    _edit(repo / ".github" / "workflows" / "ci.yml", "contents: read", "contents: write")


def _no_default_remote(repo: Path) -> None:
    _edit(repo / ".dvc" / "config", "    remote = storage\n", "")


def _stage_removed(repo: Path) -> None:
    path = repo / "dvc.yaml"
    pipeline = yaml.safe_load(path.read_text())
    del pipeline["stages"]["evaluate"]
    path.write_text(yaml.safe_dump(pipeline))


def _uri_in_code(repo: Path) -> None:
    path = next((repo / "src").rglob("train.py"))
    path.write_text(path.read_text() + '\nmlflow.set_tracking_uri("http://mlflow.other:5000")\n')


def _no_size_limit(repo: Path) -> None:
    path = next((repo / "src").rglob("service.py"))
    path.write_text(re.sub(r"^\w+\.add_asgi_middleware\(.*\)$", "", path.read_text(), flags=re.M))


def _remote_hook(repo: Path) -> None:
    _edit(
        repo / ".pre-commit-config.yaml",
        "repos:\n",
        "repos:\n  - repo: https://github.com/astral-sh/ruff-pre-commit\n    rev: v0.8.0\n"
        "    hooks:\n      - id: ruff\n",
    )


def _analytics_on(repo: Path) -> None:
    _edit(repo / ".dvc" / "config", "analytics = false", "analytics = true")


def _writable_root(repo: Path) -> None:
    _edit(
        repo / "deploy" / "base" / "deployment.yaml",
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: false",
    )


def _catalog_behind(repo: Path) -> None:
    text = (repo / "catalog-info.yaml").read_text()
    release = re.search(r'paved.dev/release: "(.+)"', text)
    assert release, text
    _edit(repo / "catalog-info.yaml", release.group(0), 'paved.dev/release: "v0.0.1"')


BREAKS: dict[str, Callable[[Path], None]] = {
    "PV001": _answers_path,
    "PV002": _one_pin_moved,
    "PV003": _dependency_not_locked,
    "PV004": _action_by_tag,
    "PV005": _write_permission,
    "PV006": _no_default_remote,
    "PV007": _stage_removed,
    "PV008": _uri_in_code,
    "PV009": _no_size_limit,
    "PV010": _remote_hook,
    "PV011": _analytics_on,
    "PV012": _writable_root,
    "PV013": _catalog_behind,
}


def test_every_rule_has_a_breaking_case() -> None:
    assert set(BREAKS) == set(PV)


@pytest.mark.parametrize("rule", sorted(BREAKS))
def test_a_render_broken_one_way_fails_that_rule_only(copy: Path, rule: str) -> None:
    BREAKS[rule](copy)
    found = results(copy)
    assert found[rule] is False
    others = {name: found[name] for name in PV if name != rule}
    # PV002 and PV013 need PV001: with the source broken, they are skipped rather than run.
    needs_pv001 = {"PV002", "PV013"}
    expected = {
        name: (None if rule == "PV001" and name in needs_pv001 else True) for name in others
    }
    assert others == expected


def test_paved_check_cli_reports_json_html_and_exit_codes(fresh: Path, copy: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "paved", "check", *args], capture_output=True, text=True
        )

    ok = cli(str(fresh), "--format", "json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["score"] == 100.0 and report["checks"]["PV009"]["result"] is True
    html = cli(str(fresh), "--format", "html")
    assert html.returncode == 0 and "PV004" in html.stdout and "<table" in html.stdout

    _no_size_limit(copy)
    bad = cli(str(copy), "--quiet")
    assert bad.returncode == 1
    assert "FAIL PV009" in bad.stdout and "RequestSizeLimit" in bad.stdout
    assert "pass " not in bad.stdout  # --quiet: failures and the score only
    assert re.search(r"score \d+ %", bad.stdout)
    chosen = cli(str(copy), "--select", "PV001,PV009", "--format", "json")
    assert chosen.returncode == 1
    ran = {k for k, v in json.loads(chosen.stdout)["checks"].items() if v["result"] is not None}
    assert ran == {"PV001", "PV009"}  # (checks ignored with a reason are still listed, skipped)
    wrong = cli(str(copy), "--format", "yaml")
    assert wrong.returncode == 1 and "choose rich, json or html" in wrong.stderr


def test_repo_review_itself_runs_the_paved_rules(fresh: Path) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "repo-review"), "--format", "json", str(fresh)],
        capture_output=True,
        text=True,
    )
    checks = json.loads(done.stdout)["checks"]
    assert {name for name in checks if name.startswith("PV")} == set(PV)
    assert all(checks[name]["result"] for name in PV)


def test_lock_drift_reads_requirements_as_parsed_not_as_spelled(fresh: Path) -> None:
    pyproject = tomllib.loads((fresh / "pyproject.toml").read_text())
    lock = (fresh / "uv.lock").read_text()
    assert lock_drift(pyproject, lock) == []
    respelled = json.loads(json.dumps(pyproject))
    respelled["project"]["dependencies"] = [
        dep.replace("pandas>=2.2", "Pandas >= 2.2") for dep in pyproject["project"]["dependencies"]
    ]
    assert lock_drift(respelled, lock) == []
    moved = json.loads(json.dumps(pyproject))
    moved["project"]["requires-python"] = ">=3.10"
    moved["dependency-groups"]["dev"].remove("ruff>=0.8")
    drift = lock_drift(moved, lock)
    assert any("requires-python" in line for line in drift)
    assert any("uv.lock still has ruff" in line for line in drift)


def test_dependabot_leaves_every_platform_pin_to_paved_update(fresh: Path) -> None:
    config = yaml.safe_load((fresh / ".github" / "dependabot.yml").read_text())
    ignored = {
        update["package-ecosystem"]: {rule["dependency-name"] for rule in update["ignore"]}
        for update in config["updates"]
    }
    assert set(ignored) == {"uv", "github-actions"}
    for pin in platform_pins(fresh):
        if pin.name.endswith(".yml"):  # acme/paved/.github/workflows/team-ci.yml
            assert pin.name.split("/.github/")[0] in ignored["github-actions"], pin
        else:
            assert pin.name.removeprefix("uv.lock ") in ignored["uv"], pin
