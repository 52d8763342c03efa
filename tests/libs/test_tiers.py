"""Every test belongs to a tier (`pytest -m <tier>`) and lives in its folder, `tests/<tier>/`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ci.dev import TIERS

pytestmark = pytest.mark.libs


#: The tiers that need tools (buildah and a registry, act): a test of one of them may sit
#: beside the lighter tests of the same code, marked with its own tier.
TOOL_TIERS = {"image", "workflows"}


def test_every_test_is_in_its_tiers_folder(tmp_path: Path) -> None:
    """tests/<tier>/ holds that tier's tests: each carries the folder's tier marker, or one
    tool tier, and no other tier (a test in a tool tier may carry the folder's tier too)."""
    tests = Path(__file__).parents[1]
    found = tmp_path / "tiers.json"
    collect = ["--collect-only", "-q", "-p", "no:cacheprovider", "-p", "tests.lib.tier_plugin"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *collect, str(tests)],
        cwd=tests.parent,
        env={
            **os.environ,
            "PAVED_TIERS_OUT": str(found),
            "PYTHONPATH": str(tests.parent),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    tiers: dict[str, list[str]] = json.loads(found.read_text())
    assert len(tiers) > 300
    wrong = {}
    for node, marks in tiers.items():
        folder = node.split("/")[1]
        others = set(marks) - {folder}
        if folder not in TIERS or not marks or len(others - TOOL_TIERS) or len(others) > 1:
            wrong[node] = marks
    assert wrong == {}, f"tests outside their tier's folder ({', '.join(TIERS)}): {wrong}"
