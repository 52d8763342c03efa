"""One exception tree, and the exit codes: the CLI turns a PavedError into one line and exit 1."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CommandError", "ExitCode", "PavedError", "ServiceRefusal", "one_line"]


class ExitCode(IntEnum):
    """What every `paved` command exits with."""

    #: Done: updated, current, adopted, every check passed, every repo on its release.
    OK = 0
    #: Refused or failed (a PavedError), a failed check, a fleet repo failed or behind.
    FAILED = 1
    #: Done, with conflicts (or a replaced answer) left for the team to resolve.
    CONFLICTS = 3


class PavedError(Exception):
    """A problem the user can fix; its message says what and how."""


class CommandError(PavedError):
    """A command this package ran failed, timed out or is not installed."""

    def __init__(self, message: str, *, returncode: int | None = None, output: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output = output


class ServiceRefusal(PavedError):
    """A service answered no: a cloud's token service, GitHub's, a registry's login.

    `service` names it, `status` is the HTTP status it answered, `reason` what it said.
    """

    def __init__(self, service: str, status: int, reason: str) -> None:
        super().__init__(f"{service} refused ({status}): {reason}")
        self.service, self.status, self.reason = service, status, reason


def one_line(exc: BaseException, *, whole: bool = True) -> str:
    """`exc` said on one line, for a report row.

    Its lines joined by " | " (at most 2000 characters), or unless `whole` the first only.
    Any other error than a PavedError (a bug, or input no check foresaw) says its type too.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = " | ".join(lines)[:2000] if whole else "".join(lines[:1])
    return text if isinstance(exc, PavedError) and text else f"{type(exc).__name__}: {text}"
