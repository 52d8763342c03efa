"""Data file helpers shared by the pipeline stages (the table's contract: paved_ml.contract)."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_md5"]


def file_md5(path: Path) -> str:
    """The md5 of a file's bytes: the hash DVC 3 records for a file in dvc.lock."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
