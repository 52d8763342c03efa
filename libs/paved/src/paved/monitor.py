"""Alerts from a team repo's monitoring run: one GitHub issue per model, and a webhook.

The monitoring job (`paved ci drift`, which runs the repo's code with a read-only token)
writes `reports/alert.json`: each check (drift, accuracy), its state and its table. The alert
job reads that file from the run's artifact, with a token that may write issues and nothing
else, and runs none of the repo's code:

- a failed check opens the model's issue, or updates the one already open (its body, and a
  comment for the run): never a second open one;
- a run whose checks all passed comments on the open issue and closes it;
- a run that could not judge changes nothing;
- with a webhook URL (a repository secret), a Slack-compatible message goes there too, when
  an issue is opened, updated or closed.

The file is the repo's output, so it is untrusted input: its size, shape and strings are
bounded, and it decides nothing but the issue's text.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

from paved._errors import PavedError
from paved.constants import ALERT_LABEL
from paved.fleet.github import GitHub

__all__ = [
    "ALERT_FILE",
    "ALERT_LABEL",
    "AlertCheck",
    "AlertOutcome",
    "alert",
    "read_alert",
]

#: What the monitoring run writes and the alert job reads (in the `drift-report` artifact).
ALERT_FILE = Path("reports/alert.json")
#: The largest alert file read, and the most rows and characters per cell shown.
_MAX_BYTES = 1 << 20
_MAX_ROWS = 50
_MAX_CELL = 200
_STATES = {"passed", "failed", "not judged"}

State = Literal["passed", "failed", "not judged"]


class AlertCheck(TypedDict):
    """One check of a monitoring run: drift or accuracy, its state, and its table's rows."""

    check: str
    state: State
    #: Each row: feature (or metric), statistic, threshold, value.
    rows: list[list[str]]


@dataclass(frozen=True)
class AlertOutcome:
    """What the alert job did: `action` is opened, updated, closed or none."""

    action: Literal["opened", "updated", "closed", "none"]
    issue: str
    webhook: bool
    message: str


def read_alert(path: Path) -> list[AlertCheck]:
    """The checks of an alert file, bounded and checked; a PavedError names what is wrong."""
    if not path.is_file():
        raise PavedError(f"no alert file at {path}: the monitoring run wrote none")
    if path.stat().st_size > _MAX_BYTES:
        raise PavedError(f"{path} is over {_MAX_BYTES} bytes: not a monitoring run's alert")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PavedError(f"{path} is not JSON: {exc}") from None
    checks = data.get("checks") if isinstance(data, dict) else None
    if not isinstance(checks, list) or not checks:
        raise PavedError(f"{path} names no checks")
    found: list[AlertCheck] = []
    for item in checks[:10]:
        if not isinstance(item, dict) or item.get("state") not in _STATES:
            raise PavedError(f"{path}: a check without a state of {sorted(_STATES)}")
        given = item.get("rows")
        rows: list[Any] = given if isinstance(given, list) else []
        found.append(
            AlertCheck(
                check=_cell(item.get("check")),
                state=item["state"],
                rows=[
                    [_cell(cell) for cell in row[:4]]
                    for row in rows[:_MAX_ROWS]
                    if isinstance(row, list)
                ],
            )
        )
    return found


def alert(
    path: Path,
    *,
    repository: str,
    model: str,
    run_url: str,
    report_url: str = "",
    webhook: str = "",
    env: Mapping[str, str] | None = None,
) -> AlertOutcome:
    """Open, update or close `model`'s monitoring issue in `repository` from the alert file.

    The GitHub token and API come from the environment (`paved.fleet.github.GitHub`);
    `webhook`, if given, gets a Slack-compatible message whenever the issue changes.
    """
    checks = read_alert(path)
    if webhook:
        _check_webhook(webhook)  # before anything changes
    if "/" not in repository:
        raise PavedError(f"{repository!r} is not an owner/name repository")
    github = GitHub(env)
    if not github.token:
        raise PavedError("the alert needs a token that may write issues: set GITHUB_TOKEN")
    model = _cell(model)
    marker = f"<!-- paved-monitoring: {model} -->"
    existing = _open_issue(github, repository, marker)
    failed = [check for check in checks if check["state"] == "failed"]
    judged = all(check["state"] != "not judged" for check in checks)
    report = report_url or run_url
    action: Literal["opened", "updated", "closed", "none"] = "none"
    issue = ""
    if failed:
        body = _issue_body(marker, model, checks, run_url, report)
        title = f"Monitoring: {model} failed {', '.join(check['check'] for check in failed)}"
        if existing is None:
            created = github.write(
                "POST",
                f"/repos/{repository}/issues",
                {"title": title, "body": body, "labels": [ALERT_LABEL]},
            )
            action, issue = "opened", _url(created)
        else:
            number = existing["number"]
            github.write(
                "PATCH", f"/repos/{repository}/issues/{number}", {"title": title, "body": body}
            )
            comment = f"Still failing in [this run]({run_url}): {_verdicts(checks)}."
            github.write("POST", f"/repos/{repository}/issues/{number}/comments", {"body": comment})
            action, issue = "updated", _url(existing)
    elif judged and existing is not None:
        number = existing["number"]
        comment = f"Passing again in [this run]({run_url}): {_verdicts(checks)}. Closing."
        github.write("POST", f"/repos/{repository}/issues/{number}/comments", {"body": comment})
        github.write(
            "PATCH",
            f"/repos/{repository}/issues/{number}",
            {"state": "closed", "state_reason": "completed"},
        )
        action, issue = "closed", _url(existing)
    message = {
        "opened": f"opened {issue}: {model} failed {_verdicts(checks)}",
        "updated": f"updated {issue}: {model} still failing ({_verdicts(checks)})",
        "closed": f"closed {issue}: {model} passes again",
        "none": f"no issue to change: {_verdicts(checks)}"
        + ("" if judged else " (a check could not judge: see the run)"),
    }[action]
    sent = False
    if webhook and action != "none":
        _post_webhook(webhook, model, action, issue, checks, report)
        sent = True
    return AlertOutcome(action, issue, sent, message)


def _open_issue(github: GitHub, repository: str, marker: str) -> dict[str, Any] | None:
    """The open monitoring issue of this model (its body carries `marker`), if there is one."""
    page = 1
    while True:
        answer = github.get(
            f"/repos/{repository}/issues",
            state="open",
            labels=ALERT_LABEL,
            per_page="100",
            page=str(page),
        )
        if not isinstance(answer, list):
            raise PavedError(f"GitHub listed no issues of {repository}: {str(answer)[:200]}")
        for item in answer:
            if isinstance(item, dict) and marker in str(item.get("body") or ""):
                return item
        if len(answer) < 100:
            return None
        page += 1


def _issue_body(
    marker: str, model: str, checks: list[AlertCheck], run_url: str, report: str
) -> str:
    lines = [
        marker,
        f"The monitoring of **{model}** failed: {_verdicts(checks)}.",
        "",
        "| check | feature or metric | statistic | threshold | value |",
        "| --- | --- | --- | --- | --- |",
    ]
    for check in checks:
        for row in check["rows"]:
            lines.append("| " + " | ".join([check["check"], *row]) + " |")
    lines += [
        "",
        f"Reports: [the run's `drift-report` artifact]({report}) · [the run]({run_url}).",
        "",
        "A later run that passes comments here and closes this issue. To act: retrain "
        "(`dvc repro`, or the retrain workflow) and review the challenger, or adjust the "
        "thresholds in `params.yaml` (`monitoring`).",
    ]
    return "\n".join(lines)


def _post_webhook(
    url: str, model: str, action: str, issue: str, checks: list[AlertCheck], report: str
) -> None:
    """A Slack-compatible message (`text`, and `blocks` in mrkdwn) to an incoming webhook."""
    _check_webhook(url)
    text = f"Monitoring of {model}: {action} ({_verdicts(checks)}). Issue: {issue}"
    rows = [
        f"• {check['check']} {row[0]}: {row[3]} ({row[1]}, threshold {row[2]})"
        for check in checks
        for row in check["rows"][:10]
    ]
    payload = {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
            *(
                [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(rows)}}]
                if rows
                else []
            ),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{report}|reports>"}]},
        ],
    }
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read(1 << 16)
    except urllib.error.HTTPError as exc:
        raise PavedError(f"the alert webhook refused the message: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise PavedError(f"the alert webhook could not be reached: {exc}") from None


def _check_webhook(url: str) -> None:
    """Only https (or loopback http); the URL is a secret, so the message never shows it."""
    parts = urllib.parse.urlsplit(url)
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise PavedError("the alert webhook must be an https URL")


def _verdicts(checks: list[AlertCheck]) -> str:
    return ", ".join(f"{check['check']} {check['state']}" for check in checks)


def _cell(value: object) -> str:
    """A table cell from untrusted input: one line, no pipes, bounded."""
    text = " ".join(str(value).split()).replace("|", "/")
    return text[:_MAX_CELL]


def _url(answer: object) -> str:
    return str(answer.get("html_url", "")) if isinstance(answer, dict) else ""
