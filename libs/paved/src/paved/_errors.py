"""One exception tree: the CLI turns a PavedError into a one-line message and exit code 1."""

from __future__ import annotations

__all__ = ["CommandError", "PavedError"]


class PavedError(Exception):
    """A problem the user can fix; its message says what and how."""


class CommandError(PavedError):
    """A command this package ran failed, timed out or is not installed."""

    def __init__(self, message: str, *, returncode: int | None = None, output: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output = output
