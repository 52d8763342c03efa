"""Constants and types shared by the test tiers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

RELEASE = "v0.1.0"
BASE_ANSWERS = {"project_name": "Iris Demo", "team": "data-science"}
Render = Callable[..., Path]
