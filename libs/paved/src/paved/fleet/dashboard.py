"""`paved status --format html`: the fleet on one self-contained page.

No server, no CDN, no fetch: the rows are written into the page (it reads without script),
and a little inline script filters them by team and by state and sorts any column. It works
from `file://`, as a CI artifact, or on any static host (GitHub Pages). Every value from a
repo is escaped: a repo's answers are untrusted input, and the page must not run them.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter
from collections.abc import Sequence

from paved.fleet.models import ModelFacts
from paved.fleet.status import RepoStatus, StatusReport

__all__ = ["STATES", "render_dashboard", "sparkline_svg", "state_of"]

#: A row's state, worst first: what the state filter offers.
STATES = ("unreadable", "failed update", "alert", "behind", "current")

_STYLE = """
:root { --amber: #b26a00; --red: #b3261e; --green: #1e7b34; --grey: #5f6368; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #202124; }
h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
.meta { color: var(--grey); margin-bottom: 1rem; }
.progress { display: flex; height: 14px; width: 100%; max-width: 640px; border-radius: 7px;
  overflow: hidden; background: #eee; margin: .4rem 0; }
.progress span { display: block; height: 100%; }
.legend span { margin-right: 1rem; }
.filters { margin: 1rem 0; display: flex; gap: 1rem; align-items: center; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e0e0e0;
  vertical-align: middle; white-space: nowrap; }
th { cursor: pointer; user-select: none; background: #f6f8fa; position: sticky; top: 0; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.behind { color: var(--amber); font-weight: 600; }
.failed, .unreadable { color: var(--red); font-weight: 600; }
.passed, .current { color: var(--green); }
svg.spark { vertical-align: middle; }
"""

_SCRIPT = """
(function () {
  var table = document.getElementById("fleet");
  var body = table.tBodies[0];
  var team = document.getElementById("team");
  var state = document.getElementById("state");
  var shown = document.getElementById("shown");
  function filter() {
    var count = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var show = (!team.value || row.dataset.team === team.value) &&
        (!state.value || row.dataset.state === state.value);
      row.hidden = !show;
      if (show) { count += 1; }
    });
    shown.textContent = count;
  }
  team.addEventListener("change", filter);
  state.addEventListener("change", filter);
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
        other.removeAttribute("aria-sort");
      });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.dataset.type === "number";
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[index].dataset.sort, y = b.cells[index].dataset.sort;
        var order;
        if (numeric) {
          x = x === "" ? -Infinity : Number(x);
          y = y === "" ? -Infinity : Number(y);
          order = x - y;
        } else {
          order = x.localeCompare(y);
        }
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
  filter();
})();
"""

#: Nothing is fetched: the page's own style and script only.
_POLICY = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_COLUMNS = (
    ("repo", "text"),
    ("team", "text"),
    ("release", "text"),
    ("behind", "number"),
    ("update", "text"),
    ("score", "number"),
    ("model", "text"),
    ("champion", "number"),
    ("deployed", "text"),
    ("drift", "text"),
    ("accuracy", "text"),
    ("alerts", "number"),
    ("state", "text"),
)


def state_of(row: RepoStatus) -> str:
    """The row's one state, worst first (see STATES)."""
    if row.error:
        return "unreadable"
    if row.update and row.update.get("outcome") == "failed":
        return "failed update"
    monitoring = row.model.monitoring if row.model else {}
    if row.alerts or any(check.get("state") == "failed" for check in monitoring.values()):
        return "alert"
    if row.behind:
        return "behind"
    return "current"


def render_dashboard(report: StatusReport, *, generated: dt.datetime | None = None) -> str:
    """The whole page, as text."""
    moment = (generated or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    teams = sorted({row.team for row in report.repos if row.team})
    rows = "\n".join(_row(row) for row in report.repos)
    header = "".join(
        f'<th data-type="{kind}" scope="col">{html.escape(name)}</th>' for name, kind in _COLUMNS
    )
    team_options = "".join(f'<option value="{_a(t)}">{html.escape(t)}</option>' for t in teams)
    state_options = "".join(f'<option value="{_a(s)}">{html.escape(s)}</option>' for s in STATES)
    tracking = ""
    if report.tracking is not None:
        tracking = (
            f" · models from {html.escape(report.tracking.uri)} "
            f"({report.tracking.calls} calls, {report.tracking.seconds:.2f} s)"
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_POLICY}">
<title>Paved fleet: {len(report.repos)} team repos</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Paved fleet: {len(report.repos)} team repos</h1>
<div class="meta">made by paved status at {moment}{tracking}</div>
{_progress(report.repos)}
<div class="filters">
  <label>team <select id="team"><option value="">all teams</option>{team_options}</select></label>
  <label>state <select id="state"><option value="">all states</option>{state_options}</select>
  </label>
  <span><span id="shown">{len(report.repos)}</span> shown</span>
</div>
<table id="fleet">
<thead><tr>{header}</tr></thead>
<tbody>
{rows}
</tbody>
</table>
<script>{_SCRIPT}</script>
</body>
</html>
"""


#: The rollout's phases, each repo in exactly one, with its colour.
_PHASES = {
    "on the latest release": "var(--green)",
    "update pull request or branch open": "#4a90d9",
    "behind, no update yet": "var(--amber)",
    "update failed": "var(--red)",
    "unreadable": "var(--grey)",
}


def _phase(row: RepoStatus) -> str:
    if row.error:
        return "unreadable"
    if row.update and row.update.get("outcome") == "failed":
        return "update failed"
    if not row.behind:
        return "on the latest release"
    return "update pull request or branch open" if row.pending else "behind, no update yet"


def _progress(rows: Sequence[RepoStatus]) -> str:
    """The rollout's progress: how many repos are in each phase."""
    total = len(rows) or 1
    counts = Counter(_phase(row) for row in rows)
    bar = "".join(
        f'<span style="width:{counts[name] / total * 100:.2f}%;background:{colour}" '
        f'title="{_a(name)}: {counts[name]}"></span>'
        for name, colour in _PHASES.items()
        if counts[name]
    )
    legend = "".join(
        f'<span><span style="color:{colour}">&#9632;</span> {html.escape(name)}: '
        f'<b data-progress="{_a(name)}">{counts[name]}</b></span>'
        for name, colour in _PHASES.items()
    )
    return (
        f'<div class="progress" role="img" aria-label="rollout progress">{bar}</div>'
        f'<div class="legend">{legend}</div>'
    )


def _row(row: RepoStatus) -> str:
    state = state_of(row)
    model = row.model or ModelFacts(name="")
    cells = [
        _cell(row.name, title=row.location),
        _cell(row.team),
        _cell(
            row.current or row.error,
            css="unreadable" if row.error else ("behind" if row.behind else ""),
            title=f"latest {row.latest}" if row.latest else "",
        ),
        _cell("" if row.behind is None else str(row.behind), sort=row.behind, css="num"),
        _update(row),
        _cell("" if row.score is None else f"{row.score:.0f} %", sort=row.score, css="num"),
        _cell(model.name if row.model else ""),
        _champion(model),
        _cell(
            ", ".join(
                f"{where} v{version}"
                for where, version in (("staging", model.staging), ("production", model.production))
                if version
            )
        ),
        _check(model, "drift"),
        _check(model, "accuracy"),
        _cell("" if row.alerts is None else str(row.alerts), sort=row.alerts, css="num"),
        _cell(state, css=state.replace(" ", "-") if state != "failed update" else "failed"),
    ]
    return f'<tr data-team="{_a(row.team)}" data-state="{_a(state)}">' + "".join(cells) + "</tr>"


def _update(row: RepoStatus) -> str:
    if row.update and row.update.get("outcome") == "failed":
        return _cell(
            f"failed: {row.update.get('to_release', '')}",
            css="failed",
            title=row.update.get("reason", ""),
        )
    pull = (row.update or {}).get("pull_request") or row.pending
    return _cell(pull)


def _champion(model: ModelFacts) -> str:
    if not model.name:
        return _cell("")
    if model.error:
        return _cell(model.error, css="failed")
    if not model.versions:
        return _cell("not registered", css="behind")
    if not model.champion:
        return _cell("no champion", css="behind")
    figure = "" if model.value is None else f" {model.metric}={model.value:.4g}"
    age = "" if model.champion_age_days is None else f", {model.champion_age_days:g} d old"
    text = html.escape(f"v{model.champion}{figure}{age}")
    return (
        f'<td data-sort="{"" if model.value is None else model.value}">'
        f"{text} {sparkline_svg(model.history)}</td>"
    )


def _check(model: ModelFacts, kind: str) -> str:
    result = model.monitoring.get(kind)
    if not result:
        return _cell("")
    state = result.get("state", "")
    return _cell(state, css=state, title=f"{kind} at {result.get('at', '')}")


def sparkline_svg(values: Sequence[float], *, width: int = 80, height: int = 18) -> str:
    """`values` as an inline SVG line, oldest on the left; "" for fewer than two."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / (len(values) - 1)
    points = " ".join(
        f"{index * step:.1f},{height - 2 - (value - low) / span * (height - 4):.1f}"
        for index, value in enumerate(values)
    )
    label = ", ".join(f"{value:.4g}" for value in values)
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{_a(label)}"><polyline fill="none" stroke="#4a90d9" '
        f'stroke-width="1.5" points="{points}"/></svg>'
    )


def _cell(text: str, *, sort: object = None, css: str = "", title: str = "") -> str:
    sort_key = text if sort is None else str(sort)
    attributes = f' data-sort="{_a(sort_key)}"'
    if css:
        attributes += f' class="{_a(css)}"'
    if title:
        attributes += f' title="{_a(title)}"'
    return f"<td{attributes}>{html.escape(text)}</td>"


def _a(text: str) -> str:
    """`text` for an attribute value."""
    return html.escape(text, quote=True)
