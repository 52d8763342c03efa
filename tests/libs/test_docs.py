"""The documentation site: builds with --strict, and its generated and listed parts are current."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ci.docs import CODE_MAP, PAGE, cli_reference, code_map

pytestmark = pytest.mark.libs

ROOT = Path(__file__).resolve().parents[2]


def test_the_site_builds_strict_with_every_part(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            "ci/mkdocs.yml",
            "-d",
            str(site),
        ],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    api = (site / "reference" / "paved-ml" / "index.html").read_text()
    for name in ("Contract", "batch_predict", "detect_drift", "PredictionLog", "ChampionModel"):
        assert name in api, f"the paved-ml reference lacks {name}"
    cli = (site / "reference" / "cli" / "index.html").read_text()
    assert "paved fleet update" in cli and "paved ci drift" in cli
    nav = yaml.safe_load((ROOT / "ci" / "mkdocs.yml").read_text())["nav"]
    listed = set(re.findall(r"decisions/[^'\"\]]+\.md", str(nav)))
    records = {f"decisions/{path.name}" for path in (ROOT / "docs" / "decisions").glob("*.md")}
    assert listed == records, "every decision record is in the site's nav"


def test_the_cli_reference_is_what_the_cli_says_now() -> None:
    assert PAGE.read_text() == cli_reference(), "stale: uv run python -m ci.docs"


def test_the_code_map_lists_every_module_as_its_docstring_says() -> None:
    assert CODE_MAP.read_text() == code_map(), "stale: uv run python -m ci.docs"
    assert "`paved.releases`" in CODE_MAP.read_text()


def test_every_template_question_is_documented() -> None:
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    questions = {name for name in config if not name.startswith("_")}
    page = (ROOT / "docs" / "reference" / "questions.md").read_text()
    missing = sorted(name for name in questions if f"`{name}`" not in page)
    assert missing == [], f"docs/reference/questions.md does not name {missing}"
