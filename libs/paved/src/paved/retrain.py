"""Retraining that opens a pull request, in two halves that never meet in one process.

`run_retrain` runs the repo's code, with no credential of the platform's: it re-ingests
the data, runs `dvc repro` against a registry made for the run and seeded with the champion
the repo serves (its folder, from the DVC remote), so the fair gate (decision 0030) scores
both models on the same test set without the team's tracking server. When the challenger
wins it pushes data and models to the DVC remote, fills the model card's champion section,
and hands on `reports/retrain/`: the patch (dvc.lock, metrics.json, the model card), the pull
request's body with `dvc metrics diff --md` of the challenger against the champion on the
same test set, and the gate's decision. When it loses, it says why and hands on nothing.

`propose_retrain` runs none of the repo's code: it applies that patch, and only to those
three files, on `paved/retrain-<model>` and opens or updates the one pull request
(`paved.proposals`). Nothing is pushed to the default branch: the champion changes when a
person merges.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paved._credentials import AMBIENT, Held
from paved._errors import PavedError
from paved._git import git
from paved._proc import run
from paved.ci.jobs import paved_ml_command, scratch_env
from paved.proposals import Proposed, propose_change
from paved.repo import TeamRepo
from paved.template import identity

__all__ = [
    "PATCHED",
    "RETRAIN_DIR",
    "RetrainRun",
    "propose_retrain",
    "retrain_branch",
    "run_retrain",
]

#: What the retraining job hands on to the job that opens the pull request.
RETRAIN_DIR = Path("reports/retrain")
#: The only files a retraining pull request changes.
PATCHED = ("dvc.lock", "metrics.json", "docs/model-card.md")
#: The gate's decision, as the template's evaluate stage writes it.
GATE = Path("reports/gate.json")
MODEL_CARD = Path("docs/model-card.md")
_CARD_START, _CARD_END = "<!-- paved:champion -->", "<!-- /paved:champion -->"
_MAX_PATCH, _MAX_BODY = 1 << 20, 60_000


@dataclass(frozen=True)
class RetrainRun:
    """The retraining run: whether the challenger won, what the gate said, and the output."""

    promoted: bool
    message: str
    output: str


def retrain_branch(model: str) -> str:
    """The one branch (and pull request) of a model's retraining."""
    return f"paved/retrain-{re.sub(r'[^A-Za-z0-9._-]+', '-', model).strip('-.') or 'model'}"


def run_retrain(project: Path, *, summary_file: str | None = None) -> RetrainRun:
    """Ingest, `dvc repro` and the fair gate; on a win, push to DVC and write RETRAIN_DIR."""
    tool = paved_ml_command("`uv sync --locked`")
    out = project / RETRAIN_DIR
    for stale in (project / GATE, *(out / name for name in ("changes.patch", "body.md"))):
        stale.unlink(missing_ok=True)
    dvc = [sys.executable, "-m", "dvc"]
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="paved-retrain-") as scratch:
        env = scratch_env(project, Path(scratch))

        def step(*command: str, check: bool = True) -> Any:
            done = run(list(command), cwd=project, env=env, check=check, detail_lines=20)
            log.append(f"$ {' '.join(command[2:] if command[0] == sys.executable else command)}")
            log.append((done.stdout + done.stderr).strip())
            return done

        step(*dvc, "pull", "--allow-missing", check=False)  # what the remote has
        if (project / "models/champion/MLmodel").is_file():
            step(str(tool), "seed-registry")
        step(*dvc, "repro", "--force", "--single-item", "ingest")  # the current data
        step(*dvc, "repro")
        if not (project / GATE).is_file():
            message = "no challenger: the data, code and parameters are what the champion had"
            return _report(RetrainRun(False, message, "\n".join(log)), summary_file)
        gate = json.loads((project / GATE).read_text(encoding="utf-8"))
        if not gate.get("promoted"):
            message = f"the challenger lost, no pull request: {gate.get('message')}"
            return _report(RetrainRun(False, message, "\n".join(log)), summary_file)
        step(*dvc, "push")
        _fill_model_card(project / MODEL_CARD, gate)
        table = _metrics_table(project, gate, env)
    out.mkdir(parents=True, exist_ok=True)
    # A file the last commit lacks (a first dvc.lock) is in the patch as a new file.
    present = [path for path in PATCHED if (project / path).is_file()]
    git(project, "add", "--intent-to-add", "--", *present)
    patch = git(project, "diff", "--binary", "HEAD", "--", *PATCHED)
    (out / "changes.patch").write_text(patch + "\n", encoding="utf-8")
    (out / "decision.json").write_text(json.dumps(gate, indent=2) + "\n", encoding="utf-8")
    body = "\n".join(
        [
            f"The retrain workflow trained a challenger that beats the champion: "
            f"{_figures(gate)}. Both were scored on the same test set, in the same run "
            f"(md5 `{gate.get('test_set_md5')}`):",
            "",
            table,
            "",
            "Data and models are in the DVC remote already; merging makes the challenger the "
            "champion the next release serves. This branch is rewritten by each retraining "
            "run while the pull request is open.",
        ]
    )
    (out / "body.md").write_text(body + "\n", encoding="utf-8")
    message = f"the challenger won: {gate.get('message')}"
    return _report(RetrainRun(True, message, "\n".join(log)), summary_file)


def _figures(gate: dict[str, Any]) -> str:
    """`f1_macro 0.9487 against 0.7454`: the gate's figures (its versions are the run's own)."""
    metric, value, against = gate.get("metric"), gate.get("value"), gate.get("champion_value")
    if not isinstance(value, int | float):
        return str(gate.get("message"))
    shown = f"{metric} {value:.4f}"
    return shown + (f" against {against:.4f}" if isinstance(against, int | float) else "")


def _report(result: RetrainRun, summary_file: str | None) -> RetrainRun:
    if summary_file:
        verdict = "a pull request follows" if result.promoted else "no pull request"
        with open(summary_file, "a", encoding="utf-8") as handle:
            handle.write(f"## Retrain: {verdict}\n\n{result.message}\n")
    return result


def _metrics_table(project: Path, gate: dict[str, Any], env: dict[str, str]) -> str:
    """`dvc metrics diff --md`: the champion's metrics on this test set against the challenger's.

    The champion's figures go in a commit of their own (never referenced: HEAD and the
    branches stay as they were) whose metrics.json holds them, so that DVC diffs like
    against like; with no champion scored here, the diff is against HEAD.
    """
    champion = gate.get("champion_metrics")
    base = "HEAD"
    if isinstance(champion, dict) and champion:
        with tempfile.TemporaryDirectory(prefix="paved-champion-") as scratch:
            figures = Path(scratch) / "metrics.json"
            figures.write_text(json.dumps(champion, indent=2) + "\n", encoding="utf-8")
            blob = git(project, "hash-object", "-w", str(figures))
            index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            git(project, "read-tree", "HEAD", env=index)
            git(project, "update-index", "--add", "--cacheinfo", f"100644,{blob},metrics.json",
                env=index)  # fmt: skip
            tree = git(project, "write-tree", env=index)
        message = "the champion on this test set"
        base = git(project, *identity(project), "commit-tree", tree, "-p", "HEAD", "-m", message)
    diff = run(
        [sys.executable, "-m", "dvc", "metrics", "diff", "--md", "--targets", "metrics.json",
         "--", base],
        cwd=project,
        env=env,
    ).stdout.strip()  # fmt: skip
    names = {base: "champion" if base != "HEAD" else "HEAD", "workspace": "challenger"}
    for old, new in names.items():
        diff = diff.replace(f"| {old[:7]} ", f"| {new} ").replace(f"| {old} ", f"| {new} ")
    return diff or "_DVC found no metric to compare._"


def _fill_model_card(path: Path, gate: dict[str, Any]) -> None:
    """The model card's champion section: the new champion's metrics and how it won."""
    metrics = gate.get("metrics") or {}
    rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in sorted(metrics.items()))
    section = "\n".join(
        [
            _CARD_START,
            "## Current champion",
            f"`{gate.get('model_name')}`, promoted by the retrain workflow: {_figures(gate)}, "
            f"both scored on the test set with md5 `{gate.get('test_set_md5')}`.",
            "",
            "| metric | value |",
            "| --- | --- |",
            rows,
            _CARD_END,
        ]
    )
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Model card\n"
    if _CARD_START in text and _CARD_END in text:
        before, rest = text.split(_CARD_START, 1)
        after = rest.split(_CARD_END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def propose_retrain(
    project: Path, *, handed: Path, github: str | None = None, held: Held = AMBIENT
) -> Proposed:
    """Apply the retraining job's patch on the model's branch and open or update its PR.

    `handed` is the job's RETRAIN_DIR (its artifact). The patch may change PATCHED only;
    anything else (another file, a mode, a rename, a binary) is refused before anything
    changes. Runs none of the repo's code.
    """
    patch, body_file, decision_file = (
        handed / name for name in ("changes.patch", "body.md", "decision.json")
    )
    for path, limit in ((patch, _MAX_PATCH), (body_file, _MAX_BODY), (decision_file, _MAX_BODY)):
        if not path.is_file():
            raise PavedError(f"no {path.name} in {handed}: the retraining job handed on nothing")
        if path.stat().st_size > limit:
            raise PavedError(f"{path} is over {limit} bytes: not a retraining run's")
    text = patch.read_text(encoding="utf-8")
    touched = set(re.findall(r"^diff --git a/(\S+) b/\S+$", text, flags=re.MULTILINE))
    if not touched:
        raise PavedError(f"{patch} changes nothing")
    if extra := touched - set(PATCHED):
        raise PavedError(f"{patch} changes {', '.join(sorted(extra))}: only {', '.join(PATCHED)}")
    if re.search(r"^(old mode|new mode|rename |copy |GIT binary patch|Binary files)", text, re.M):
        raise PavedError(f"{patch} changes a mode, a name or a binary: refused")
    decision = json.loads(decision_file.read_text(encoding="utf-8"))
    repo = TeamRepo(project)
    model = repo.model_name
    metric, value = str(decision.get("metric", "")), decision.get("value")
    shown = f": {metric} {value:.4f}" if isinstance(value, int | float) else ""
    title = f"Retrain {model}{shown}"[:200]

    def edit(tree: Path) -> list[str]:
        git(tree, "apply", "--whitespace=nowarn", str(patch.absolute()))
        return sorted(touched)

    return propose_change(
        project,
        branch=retrain_branch(model),
        title=title,
        body=body_file.read_text(encoding="utf-8"),
        edit=edit,
        github=github,
        held=held,
    )
