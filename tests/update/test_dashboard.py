"""`paved status --format html` in a real browser: Debian's Chromium, headless, through
chromedriver (Selenium). A page of 500 repos from `file://`: its rows, a filter, a sort, and
values from a hostile repo shown as text, never run. The screenshot is kept as a test
artifact (`build/test-artifacts/`, or `$PAVED_TEST_ARTIFACTS`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from paved.fleet.dashboard import render_dashboard, state_of
from paved.fleet.models import ModelFacts
from paved.fleet.status import RepoStatus, StatusReport, Tracking

from tests.lib.browser import chromium, load_seconds

pytestmark = pytest.mark.update

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


def _fleet(count: int) -> StatusReport:
    """`count` repos over ten teams, in every state, with models; one with a hostile name."""
    rows = []
    for number in range(count):
        behind = number % 3
        row = RepoStatus(
            name=f"repo-{number:03d}",
            location=f"/fleet/repo-{number:03d}",
            team=f"team-{number % 10}",
            source="https://github.com/acme/paved.git",
            current="v0.1.0" if behind else "v0.3.0",
            latest="v0.3.0",
            behind=behind,
            pending="pull request #7" if behind == 1 else "",
            score=float((number * 37) % 101),
            model=ModelFacts(
                name=f"model-{number:03d}",
                versions=3,
                champion="3",
                metric="f1_macro",
                value=0.8 + (number % 20) / 100,
                champion_age_days=float(number % 30),
                staging="3",
                production="2",
                history=[0.7, 0.9, 0.8 + (number % 20) / 100],
                monitoring={"drift": {"state": "failed" if number % 25 == 0 else "passed"}},
            ),
        )
        if number % 50 == 7:
            row.update = {"outcome": "failed", "reason": "conflict", "to_release": "v0.3.0"}
        rows.append(row)
    rows[-1].error = "cannot read .copier-answers.yml"
    rows[-1].model = None
    rows[0].name, rows[0].team = HOSTILE, "team-0"
    return StatusReport(rows, tracking=Tracking("http://127.0.0.1:5000", 6, count - 1, 0.5))


def _visible(browser: object, column: int) -> list[str]:
    """The text of column `column` in each row the filters show, top to bottom."""
    return browser.execute_script(  # type: ignore[attr-defined, no-any-return]
        "return [...document.querySelectorAll('#fleet tbody tr')]"
        ".filter(r => !r.hidden).map(r => r.cells[arguments[0]].textContent);",
        column,
    )


def test_a_dashboard_of_500_repos_filters_and_sorts_in_chromium(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    report = _fleet(500)
    page = tmp_path / "dashboard.html"
    page.write_text(render_dashboard(report), encoding="utf-8")
    with chromium() as browser:
        browser.get(page.as_uri())
        timing = load_seconds(browser)
        print(
            f"dashboard of 500 repos: DOM ready {timing['dom_ready']:.3f} s, "
            f"loaded {timing['loaded']:.3f} s"
        )
        assert len(browser.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")) == 500
        assert browser.find_element(By.ID, "shown").text == "500"

        # A repo's values are text: the hostile name is shown, its markup never runs.
        assert browser.title.startswith("Paved fleet: 500 team repos")
        assert HOSTILE in _visible(browser, 0)
        assert not browser.find_elements(By.CSS_SELECTOR, "#fleet img")

        # One filter: team-3's 50 repos; with a state too, only those in it.
        Select(browser.find_element(By.ID, "team")).select_by_value("team-3")
        names = _visible(browser, 0)
        assert len(names) == 50 and browser.find_element(By.ID, "shown").text == "50"
        assert all(int(name.split("-")[1]) % 10 == 3 for name in names)
        Select(browser.find_element(By.ID, "state")).select_by_value("behind")
        expected = [
            row.name for row in report.repos if row.team == "team-3" and state_of(row) == "behind"
        ]
        assert sorted(_visible(browser, 0)) == sorted(expected) and expected
        Select(browser.find_element(By.ID, "team")).select_by_value("")
        Select(browser.find_element(By.ID, "state")).select_by_value("")

        # One sort: the score column, ascending and then descending, numerically.
        score = browser.find_element(By.XPATH, "//th[text()='score']")
        score.click()
        ascending = [float(text.rstrip(" %")) for text in _visible(browser, 5) if text]
        assert ascending == sorted(ascending) and ascending[0] == 0.0
        score.click()
        descending = [float(text.rstrip(" %")) for text in _visible(browser, 5) if text]
        assert descending == sorted(descending, reverse=True) and descending[0] == 100.0
        assert score.get_attribute("aria-sort") == "descending"

        # The rollout's progress counts every repo once.
        counts = {
            element.get_attribute("data-progress"): int(element.text)
            for element in browser.find_elements(By.CSS_SELECTOR, "[data-progress]")
        }
        assert sum(counts.values()) == 500
        assert counts["update failed"] == 10 and counts["unreadable"] == 1

        artifacts = Path(os.environ.get("PAVED_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
        artifacts.mkdir(parents=True, exist_ok=True)
        shot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        shutil.copy(shot, artifacts / "dashboard.png")
        shutil.copy(page, artifacts / "dashboard.html")
