"""A fleet manifest's waves (`paved.fleet.sources.find_waves`) and `paved fleet update
--wave`'s refusals, which touch no repo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from paved._errors import PavedError
from paved.fleet.sources import Wave, find_repos, find_waves

pytestmark = pytest.mark.libs

REPOS = """repos:
  - https://git.example/acme/churn.git
  - https://git.example/acme/upsell.git
  - {url: https://git.example/acme/risk.git, name: risk}
  - https://git.example/acme/fraud.git
"""


def _manifest(tmp_path: Path, waves: str) -> str:
    path = tmp_path / "fleet.yml"
    path.write_text(REPOS + waves)
    return str(path)


def test_waves_in_order_with_the_rest_last(tmp_path: Path) -> None:
    target = _manifest(tmp_path, "waves:\n  canary: [upsell, churn]\n  early: [risk]\n")
    assert [ref.name for ref in find_repos(target)] == ["churn", "upsell", "risk", "fraud"]
    assert find_waves(target) == [
        Wave("canary", ("upsell", "churn")),
        Wave("early", ("risk",)),
        Wave("rest", ("fraud",)),
    ]


def test_a_star_wave_takes_every_other_repo(tmp_path: Path) -> None:
    target = _manifest(tmp_path, "waves:\n  canary: [risk]\n  everyone: '*'\n")
    assert find_waves(target) == [
        Wave("canary", ("risk",)),
        Wave("everyone", ("churn", "upsell", "fraud")),
    ]


def test_a_list_manifest_or_a_folder_is_one_wave(tmp_path: Path) -> None:
    path = tmp_path / "list.yml"
    path.write_text("- https://git.example/acme/churn.git\n")
    assert find_waves(str(path)) == [Wave("all", ("churn",))]


@pytest.mark.parametrize(
    ("waves", "refusal"),
    [
        ("waves:\n  canary: [churn, nobody]\n", "wave 'canary' names nobody: not in `repos`"),
        ("waves:\n  a: [churn]\n  b: [churn]\n", "churn is in the waves 'a' and 'b'"),
        ("waves:\n  all: '*'\n  late: [risk]\n", "wave 'all' takes every other repo: make it last"),
        ("waves:\n  canary: churn\n", "wave 'canary' is not a list of repo names"),
        ("waves: [churn]\n", "`waves` is a mapping of wave names to lists of repo names"),
        ("waves:\n  rest: [churn]\n", "would form `rest`, a wave already"),
    ],
)
def test_a_wrong_wave_is_refused_naming_it(tmp_path: Path, waves: str, refusal: str) -> None:
    with pytest.raises(PavedError, match=refusal.replace("[", r"\[").replace("*", r"\*")):
        find_waves(_manifest(tmp_path, waves))


def test_fleet_update_refuses_an_unknown_wave_before_touching_any_repo(tmp_path: Path) -> None:
    target = _manifest(tmp_path, "waves:\n  canary: [churn]\n")

    def update(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "paved", "fleet", "update", target, "--to", "v0.1.0"]
        return subprocess.run([*command, *args], capture_output=True, text=True, cwd=tmp_path)

    unknown = update("--wave", "late")
    assert unknown.returncode != 0
    assert "--wave late: " in unknown.stderr and "has the waves canary, rest" in unknown.stderr
    both = update("--wave", "canary", "--only", "churn")
    assert both.returncode != 0 and "give one of them" in both.stderr
    assert not (tmp_path / ".paved-fleet").exists()  # no record: nothing was run
