"""Running git in a repo."""

from __future__ import annotations

import subprocess
from pathlib import Path

from paved._errors import PavedError


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """`git <args>` in `cwd`: its stripped output; on failure an error, or "" if not `check`."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        if check:
            raise PavedError(f"`git {' '.join(args)}` failed in {cwd}:\n{done.stderr.strip()}")
        return ""
    return done.stdout.strip()
