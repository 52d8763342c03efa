"""Render every example: examples/<name>.answers.yml -> examples/<name>/.

    uv run python -m ci.render_examples

The renders record the canonical platform URL: the checkout (or, when it has uncommitted
changes, a snapshot of its working tree) is served under that URL by git's insteadOf.
tests/render/test_examples.py fails while a committed render differs from a fresh one.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from copier import run_copy
from paved._git import LOCATION_VARIABLES
from plumbum import local

from ci.snapshot import PLATFORM_URL, ROOT, canonical_env, git, snapshot

EXAMPLES = ROOT / "examples"


def examples() -> dict[str, dict[str, Any]]:
    """Each example's name and the answers it is rendered with."""
    return {
        path.name.removesuffix(".answers.yml"): yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted(EXAMPLES.glob("*.answers.yml"))
    }


def render_example(answers: dict[str, Any], dest: Path, *, vcs_ref: str | None = None) -> Path:
    """Render one example from the canonical URL (which the caller maps to a clone)."""
    run_copy(PLATFORM_URL, dest, data=answers, defaults=True, quiet=True, vcs_ref=vcs_ref)
    return dest


def main() -> int:
    # Run as a git hook, git names the repository being committed to (GIT_INDEX_FILE, ...):
    # copier's and the snapshot's git calls work on other repositories and must not see it.
    for name in LOCATION_VARIABLES:
        os.environ.pop(name, None)
        local.env.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="paved-examples-") as scratch:
        source = ROOT
        if git(ROOT, "status", "--porcelain"):
            source = Path(scratch) / "platform"
            snapshot(source, tag=None)
            print("render_examples: uncommitted changes, rendering a snapshot of the working tree")
        with local.env(**canonical_env(source)):
            for name, answers in examples().items():
                dest = EXAMPLES / name
                shutil.rmtree(dest, ignore_errors=True)
                render_example(answers, dest, vcs_ref="HEAD")
                print(f"rendered examples/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
