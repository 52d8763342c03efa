"""Constants with one home: every copy that cannot import it agrees with it.

The homes: `paved.constants.TELEMETRY_OFF`, `paved.template.PLATFORM_URL` and `ci/dev.py`'s
`UV_VERSION` (the bootstrap imports nothing but the standard library). The copies: the
reusable workflows, copier.yml's default, paved-ml's start-up file.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from paved.constants import TELEMETRY_OFF
from paved.template import PLATFORM_URL

from ci.dev import UV_VERSION
from ci.snapshot import ROOT

pytestmark = pytest.mark.libs

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _load(path: Path) -> dict[str, object]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def _inputs(workflow: dict[str, object]) -> dict[str, dict[str, object]]:
    # PyYAML reads the key `on` as True.
    on = workflow.get("on", workflow.get(True))
    call = on.get("workflow_call") if isinstance(on, dict) else None
    inputs = call.get("inputs") if isinstance(call, dict) else None
    return inputs if isinstance(inputs, dict) else {}


def _env_blocks(node: object) -> list[dict[str, object]]:
    """Every `env:` mapping in a workflow, at any level."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, dict):
                found.append(value)
            found += _env_blocks(value)
    elif isinstance(node, list):
        for item in node:
            found += _env_blocks(item)
    return found


def test_every_workflow_installs_the_uv_the_bootstrap_installs() -> None:
    seen = 0
    for path in WORKFLOWS:
        text = path.read_text(encoding="utf-8")
        declared = _inputs(_load(path)).get("uv-version")
        if declared is not None:
            assert str(declared.get("default")) == UV_VERSION, path.name
            seen += 1
        for literal in re.findall(r"uv-version \|\| '([^']+)'", text):
            assert literal == UV_VERSION, path.name
    assert seen >= 5  # team-ci, team-drift, team-release, fleet-rollout, docs


def test_every_workflow_that_names_a_telemetry_switch_turns_it_off() -> None:
    seen = set()
    for path in WORKFLOWS:
        for env in _env_blocks(_load(path)):
            for name in TELEMETRY_OFF.keys() & env.keys():
                assert str(env[name]) == TELEMETRY_OFF[name], f"{path.name}: {name}"
                seen.add(path.name)
    assert {"team-ci.yml", "team-drift.yml", "team-release.yml"} <= seen


def test_paved_ml_turns_off_the_same_telemetry_at_start_up() -> None:
    line = (ROOT / "libs" / "paved-ml" / "paved_ml_telemetry.pth").read_text().strip()
    pairs = re.search(r"for k, v in (\(\(.*\)\))\]", line)
    assert pairs, line
    assert dict(ast.literal_eval(pairs[1])) == TELEMETRY_OFF


def test_the_platform_url_has_one_value() -> None:
    answers = _load(ROOT / "copier.yml")
    assert answers["platform_repo_url"]["default"] == PLATFORM_URL  # type: ignore[index]
    rollout = _inputs(_load(ROOT / ".github" / "workflows" / "fleet-rollout.yml"))
    assert rollout["platform-url"]["default"] == PLATFORM_URL
