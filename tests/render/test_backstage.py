"""Render tier: a team repo's place in Backstage.

`catalog-info.yaml` is validated by Backstage's own `@backstage/catalog-model` (npm, pinned,
installed once into the tools cache): the policies its catalog applies to every entity it
reads, and the Component schema. `mkdocs.yml` is built as TechDocs builds it, with
`mkdocs-techdocs-core`, strict.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from paved.checks import check_repo

from ci.golden_path import DEMO_ANSWERS
from ci.snapshot import LOCK_ENV, PLATFORM_URL
from tests.lib.helpers import npm_tool

pytestmark = pytest.mark.render

CATALOG_MODEL = "1.10.3"
TECHDOCS_CORE = "mkdocs-techdocs-core==1.7.1"
VALIDATE = Path(__file__).parents[1] / "lib" / "backstage_validate.cjs"


def backstage_validates(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each entity's verdict from Backstage's catalog-model: {"ok": bool, "error": str}."""
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is needed (Debian: apt-get install npm)"
    modules = npm_tool("@backstage/catalog-model", CATALOG_MODEL)
    done = subprocess.run(
        [node, str(VALIDATE)],
        input=json.dumps(entities),
        capture_output=True,
        text=True,
        env={**os.environ, "NODE_PATH": str(modules)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, platform: tuple[Path, str]) -> Path:
    from copier import run_copy

    dest = tmp_path_factory.mktemp("backstage") / "iris-demo"
    answers = {**DEMO_ANSWERS, "description": 'Iris: "setosa" & co. <b>', "team": "vision"}
    run_copy(PLATFORM_URL, dest, data=answers, defaults=True, quiet=True, unsafe=False)
    return dest


def test_the_catalog_entry_passes_backstage_s_own_validation(repo: Path) -> None:
    entity = yaml.safe_load((repo / "catalog-info.yaml").read_text())
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert entity["spec"] == {"type": "service", "lifecycle": "production", "owner": "vision"}
    annotations = entity["metadata"]["annotations"]
    assert annotations["paved.dev/release"] == answers["_commit"]
    assert annotations["github.com/project-slug"] == "acme/iris-demo"
    assert entity["metadata"]["description"] == 'Iris: "setosa" & co. <b>'

    # Each broken copy is refused, so the validation is no rubber stamp.
    bad_name, no_owner, bad_annotation = (copy.deepcopy(entity) for _ in range(3))
    bad_name["metadata"]["name"] = "Iris Demo!"
    del no_owner["spec"]["owner"]
    bad_annotation["metadata"]["annotations"]["paved dev/release"] = "v1"
    verdicts = backstage_validates([entity, bad_name, no_owner, bad_annotation])
    assert verdicts[0] == {"ok": True, "error": ""}, verdicts[0]
    assert [verdict["ok"] for verdict in verdicts[1:]] == [False, False, False], verdicts
    assert "metadata.name" in verdicts[1]["error"]
    assert "owner" in verdicts[2]["error"]


def test_paved_check_holds_the_catalog_entry_to_the_answers(repo: Path, tmp_path: Path) -> None:
    def pv013(path: Path) -> bool | None:
        report = check_repo(path, select=frozenset({"PV013"}))
        return next(result.result for result in report.results if result.name == "PV013")

    assert pv013(repo) is True
    moved = tmp_path / "moved"
    shutil.copytree(repo, moved)
    text = (moved / "catalog-info.yaml").read_text()
    (moved / "catalog-info.yaml").write_text(text.replace("owner: vision", "owner: someone"))
    assert pv013(moved) is False
    (moved / "catalog-info.yaml").write_text(text)
    (moved / "mkdocs.yml").unlink()
    assert pv013(moved) is False


def test_techdocs_builds_the_readme_and_the_model_card(repo: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        ["uvx", "--from", TECHDOCS_CORE, "--with", TECHDOCS_CORE, "mkdocs", "build",
         "--strict", "--site-dir", str(site)],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, **LOCK_ENV},
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    home = (site / "index.html").read_text()
    readme_title = (repo / "README.md").read_text().splitlines()[0].lstrip("# ").strip()
    assert readme_title and readme_title in home  # the README itself, included
    assert "--8&lt;--" not in home and "--8<--" not in home
    assert "Model card" in (site / "model-card" / "index.html").read_text()
