"""A pytest plugin for tests/libs/test_tiers.py: write each collected test's tier markers.

PAVED_TIERS_OUT=FILE pytest --collect-only -p tests.lib.tier_plugin
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ci.dev import TIERS


def pytest_collection_finish(session: pytest.Session) -> None:
    found = {
        item.nodeid: sorted({mark.name for mark in item.iter_markers()} & set(TIERS))
        for item in session.items
    }
    Path(os.environ["PAVED_TIERS_OUT"]).write_text(json.dumps(found), encoding="utf-8")
