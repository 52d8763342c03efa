"""paved.monitor: a monitoring run's verdicts open, update and close one issue per model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from paved._errors import PavedError
from paved.monitor import alert

from tests.lib.fake_github import serving

pytestmark = pytest.mark.libs

TOKEN = "gh-stand-in-token-monitor"
RUN = "https://github.invalid/acme/iris-demo/actions/runs/{}"


@pytest.fixture
def github(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """The GitHub stand-in (also the webhook's receiver): its state file and environment."""
    state = tmp_path / "github.json"
    repo = {"full_name": "acme/iris-demo", "default_branch": "main"}
    state.write_text(json.dumps({"token": TOKEN, "repos": [repo], "pulls": []}))
    with serving(state, tmp_path / "github.log") as api:
        yield state, {"PAVED_GITHUB_API": api, "GITHUB_TOKEN": TOKEN}


def verdicts(folder: Path, *states: str) -> Path:
    """An alert file as `paved ci drift` writes it: drift, then accuracy if a second state."""
    rows = {
        "drift": [["petal_length_cm", "K-S p_value", "0.05", "1.2e-09"]],
        "accuracy": [["f1_macro", "window from 2026-12-01 (90 labels)", ">= 0.85", "0.6120"]],
    }
    checks = [
        {"check": kind, "state": state, "rows": rows[kind] if state == "failed" else []}
        for kind, state in zip(("drift", "accuracy"), states, strict=False)
    ]
    path = folder / f"alert-{'-'.join(s.replace(' ', '_') for s in states)}.json"
    path.write_text(json.dumps({"checks": checks}))
    return path


def test_a_failure_opens_one_issue_a_second_updates_it_and_a_pass_closes_it(
    github: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    state, env = github
    hook = env["PAVED_GITHUB_API"] + "/hooks/team-alerts"
    common = {"repository": "acme/iris-demo", "model": "iris-demo", "webhook": hook, "env": env}

    first = alert(verdicts(tmp_path, "failed", "passed"), run_url=RUN.format(1), **common)
    assert first.action == "opened" and first.webhook
    [issue] = json.loads(state.read_text())["issues"]
    assert issue["state"] == "open" and issue["labels"] == [{"name": "paved-monitoring"}]
    assert issue["title"] == "Monitoring: iris-demo failed drift"
    assert "| drift | petal_length_cm | K-S p_value | 0.05 | 1.2e-09 |" in issue["body"]
    assert f"[the run's `drift-report` artifact]({RUN.format(1)})" in issue["body"]

    second = alert(
        verdicts(tmp_path, "failed", "failed"),
        run_url=RUN.format(2),
        report_url=RUN.format(2) + "/artifacts/7",
        **common,
    )
    assert second.action == "updated" and second.issue == first.issue
    [issue] = json.loads(state.read_text())["issues"]
    assert issue["title"] == "Monitoring: iris-demo failed drift, accuracy"
    assert (
        "| accuracy | f1_macro | window from 2026-12-01 (90 labels) | >= 0.85 | 0.6120 |"
        in (issue["body"])
    )
    assert RUN.format(2) + "/artifacts/7" in issue["body"]
    assert issue["comments"] == [
        f"Still failing in [this run]({RUN.format(2)}): drift failed, accuracy failed."
    ]

    unjudged = alert(verdicts(tmp_path, "not judged"), run_url=RUN.format(3), **common)
    assert unjudged.action == "none" and "could not judge" in unjudged.message
    clean = alert(verdicts(tmp_path, "passed", "passed"), run_url=RUN.format(4), **common)
    assert clean.action == "closed" and clean.issue == first.issue
    [issue] = json.loads(state.read_text())["issues"]
    assert issue["state"] == "closed" and issue["comments"][-1].startswith("Passing again")
    assert alert(verdicts(tmp_path, "passed"), run_url=RUN.format(5), **common).action == "none"

    # Another model's failure is its own issue; the webhook heard each change, not the rest.
    other = alert(
        verdicts(tmp_path, "failed"), run_url=RUN.format(6), **{**common, "model": "wine"}
    )
    assert other.action == "opened" and other.issue != first.issue
    sent = json.loads(state.read_text())["webhooks"]
    assert [w["hook"] for w in sent] == ["team-alerts"] * 4
    texts = [w["payload"]["text"] for w in sent]
    assert texts[0].startswith("Monitoring of iris-demo: opened (drift failed, accuracy passed)")
    assert [text.split(": ")[1].split(" ")[0] for text in texts] == [
        "opened", "updated", "closed", "opened",
    ]  # fmt: skip
    assert sent[0]["payload"]["blocks"][0]["type"] == "section"


def test_an_alert_file_that_is_not_a_monitoring_runs_is_refused_and_changes_nothing(
    github: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    state, env = github
    common = {"repository": "acme/iris-demo", "model": "iris-demo", "run_url": RUN.format(1)}
    bad = tmp_path / "alert.json"
    for text, message in (
        ("not json", "is not JSON"),
        ('{"checks": []}', "names no checks"),
        ('{"checks": [{"check": "drift", "state": "red"}]}', "a check without a state"),
        (" " * (2 << 20), "is over 1048576 bytes"),
    ):
        bad.write_text(text)
        with pytest.raises(PavedError, match=message):
            alert(bad, env=env, **common)
    with pytest.raises(PavedError, match="no alert file at"):
        alert(tmp_path / "none.json", env=env, **common)
    with pytest.raises(PavedError, match="the alert webhook must be an https URL"):
        alert(verdicts(tmp_path, "failed"), env=env, webhook="http://chat.example/hook", **common)
    assert "issues" not in json.loads(state.read_text()), "nothing was opened"
    with pytest.raises(PavedError, match="needs a token that may write issues"):
        alert(
            verdicts(tmp_path, "failed"),
            env={"PAVED_GITHUB_API": env["PAVED_GITHUB_API"]},
            **common,
        )
    # Pipes and newlines in what the repo's run wrote cannot break the issue's table.
    hostile = tmp_path / "hostile.json"
    row = ["a|b\n| injected | row |", "x", "y", "z", "extra"]
    hostile.write_text(
        json.dumps({"checks": [{"check": "drift", "state": "failed", "rows": [row]}]})
    )
    alert(hostile, env=env, **common)
    issues = json.loads(state.read_text())["issues"]
    assert len(issues) == 1
    assert "| drift | a/b / injected / row / | x | y | z |" in issues[-1]["body"]
