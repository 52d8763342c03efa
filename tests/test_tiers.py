"""Every test belongs to a tier: `pytest -m <tier>` runs are what CI and people select by."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.libs

TIERS = ("render", "project", "libs", "update", "image", "ci")


def test_every_test_carries_a_tier_marker() -> None:
    tests = Path(__file__).parent
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            f"not ({' or '.join(TIERS)})",
            str(tests),
        ],
        cwd=tests.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    untiered = [line for line in done.stdout.splitlines() if "::" in line]
    assert untiered == [], f"tests without a tier marker ({', '.join(TIERS)}): {untiered}"
    assert done.returncode == 5, done.stdout[-2000:]  # 5: nothing selected, nothing broken
