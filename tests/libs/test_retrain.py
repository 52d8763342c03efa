"""paved.retrain.propose_retrain: only the three files a retrain changes, on its own branch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from paved._errors import PavedError
from paved.retrain import propose_retrain, retrain_branch

from ci.snapshot import GIT_IDENTITY
from tests.lib.helpers import refs

pytestmark = pytest.mark.libs


def git(repo: Path, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo), **GIT_IDENTITY}
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A team repo on main, with the files a retrain changes."""
    repo = tmp_path / "team"
    (repo / "docs").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[tool.paved]\nmodel-name = "iris-demo"\n')
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (repo / "metrics.json").write_text('{"f1_macro": 0.70}\n')
    (repo / "docs" / "model-card.md").write_text("# Model card\n")
    (repo / "train.py").write_text("print('train')\n")
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "Team repo")
    return repo


def handed(repo: Path, folder: Path, *, also: str | None = None) -> Path:
    """A retraining job's hand-over: a patch of the metrics (and `also`), body and decision."""
    (repo / "metrics.json").write_text('{"f1_macro": 0.95}\n')
    if also:
        (repo / also).write_text("import os; os.system('curl evil')\n")
    folder.mkdir()
    (folder / "changes.patch").write_text(git(repo, "diff", "--binary", "HEAD") + "\n")
    git(repo, "checkout", "--quiet", "--", ".")
    (folder / "body.md").write_text("| Path | Metric | champion | challenger |\n")
    (folder / "decision.json").write_text(json.dumps({"metric": "f1_macro", "value": 0.95}))
    return folder


def test_a_patch_of_the_metrics_is_one_commit_on_the_models_branch(
    repo: Path, tmp_path: Path
) -> None:
    proposed = propose_retrain(repo, handed=handed(repo, tmp_path / "handed"))
    assert proposed.branch == retrain_branch("iris-demo") == "paved/retrain-iris-demo"
    assert git(repo, "show", f"{proposed.branch}:metrics.json") == '{"f1_macro": 0.95}'
    assert git(repo, "diff", "--name-only", "main", proposed.branch) == "metrics.json"
    assert (
        git(repo, "log", "-1", "--format=%s", proposed.branch)
        == "Retrain iris-demo: f1_macro 0.9500"
    )
    assert git(repo, "rev-parse", "main") == git(repo, "rev-parse", f"{proposed.branch}^")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("train.py", "changes train.py: only dvc.lock, metrics.json, docs/model-card.md"),
        ("binary", "changes a mode, a name or a binary: refused"),
        ("empty", "changes nothing"),
        ("missing", "no body.md in"),
    ],
)
def test_a_patch_beyond_the_three_files_is_refused_and_changes_nothing(
    repo: Path, tmp_path: Path, change: str, message: str
) -> None:
    folder = handed(repo, tmp_path / "handed", also="train.py" if change == "train.py" else None)
    patch = folder / "changes.patch"
    if change == "binary":
        patch.write_text(patch.read_text() + "diff --git a/dvc.lock b/dvc.lock\nGIT binary patch\n")
    if change == "empty":
        patch.write_text("\n")
    if change == "missing":
        (folder / "body.md").unlink()
    before = refs(repo)
    with pytest.raises(PavedError, match=message.replace("(", r"\(")):
        propose_retrain(repo, handed=folder)
    assert refs(repo) == before and git(repo, "status", "--porcelain") == ""
