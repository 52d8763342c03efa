"""The one way this package runs another program: with a timeout, and errors that say why."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from paved._errors import CommandError

__all__ = ["BUILD_TIMEOUT", "QUICK_TIMEOUT", "run"]

#: Image builds and environment installs: long, but never forever.
BUILD_TIMEOUT = 30 * 60
#: Logins, inspections, version probes.
QUICK_TIMEOUT = 120


def run(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = BUILD_TIMEOUT,
    input: str | None = None,
    check: bool = True,
    detail_lines: int = 20,
    pass_fds: Sequence[int] = (),
    failure: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `command`, capturing its output; a failure (if `check`) raises a CommandError.

    The error's message says `failure` (by default: which command failed, and its exit
    code), then the last `detail_lines` lines of the command's error output (1 where the
    last line says it all: a refused push, a failed login). A missing program and a timeout
    are CommandErrors too, whatever `check` says. `pass_fds` stay open in the child (a pipe
    that hands it a secret).
    """
    shown = " ".join(command)
    try:
        done = subprocess.run(
            list(command),
            cwd=cwd,
            env=dict(os.environ if env is None else env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError as exc:
        raise CommandError(f"`{command[0]}` is not installed (needed for `{shown}`)") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"`{shown}` did not finish within {timeout:.0f} s") from exc
    except (ValueError, OSError) as exc:  # an argument with a NUL, a folder that is gone
        raise CommandError(f"`{shown!r}` could not start: {exc}") from exc
    if check and done.returncode:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()[-detail_lines:]
        separator = ": " if detail_lines == 1 else ":\n"
        said = failure or f"`{shown}` failed ({done.returncode})"
        raise CommandError(
            f"{said}{separator}{chr(10).join(lines or ['no reason given'])[-3000:]}",
            returncode=done.returncode,
            output=done.stdout + done.stderr,
        )
    return done
