"""One exception tree: the CLI turns a PavedError into a message and exit code 1."""


class PavedError(Exception):
    """A problem the user can fix; its message says what and how."""
