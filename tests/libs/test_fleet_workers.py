"""The fleet's worker processes: one update at a time each, replaced when one dies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from paved._errors import PavedError
from paved.fleet.rollout import _Workers

pytestmark = pytest.mark.libs


def test_a_worker_that_dies_fails_its_task_and_the_next_task_gets_a_new_worker(
    tmp_path: Path,
) -> None:
    workers = _Workers(1, tmp_path / "templates")
    try:
        first = workers.run(os.getpid)
        assert workers.run(os.getpid) == first  # the same process serves one task after another
        assert first != os.getpid()
        with pytest.raises(PavedError, match="died"):
            workers.run(os._exit, 3)
        assert workers.run(os.getpid) not in (first, os.getpid())
    finally:
        workers.close()
