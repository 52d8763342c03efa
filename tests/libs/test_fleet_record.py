"""The fleet's record (`<state>/<release>.json`): concurrent runs, a full disk, the report."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from paved._errors import PavedError
from paved.fleet.rollout import Outcome, _write_record

pytestmark = pytest.mark.libs


WRITER = """
import sys, time
from pathlib import Path
from paved.fleet.rollout import Outcome, _write_record
record, name, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
for round_ in range(20):
    _write_record(record, [Outcome(name=name, reason=f"round {round_}")])
"""


def test_concurrent_runs_keep_each_others_outcomes(tmp_path: Path) -> None:
    # Two runs (--only c1, --only c2) read the record, then wrote it: only c1 was left.
    record, go = tmp_path / "state" / "v0.2.0.json", tmp_path / "go"
    runs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(record), f"c{i}", str(go)])
        for i in range(6)
    ]
    go.touch()  # every writer starts at once
    assert [run.wait(120) for run in runs] == [0] * 6
    kept = json.loads(record.read_text())
    assert sorted(kept) == [f"c{i}" for i in range(6)]
    assert {row["reason"] for row in kept.values()} == {"round 19"}


def test_a_failure_that_knows_no_commit_keeps_the_recorded_one(tmp_path: Path) -> None:
    # A re-run whose clone did not answer recorded commit "" over the fleet's own: every
    # run after it refused the fleet's branch as not recorded.
    record = tmp_path / "v0.2.0.json"
    _write_record(record, [Outcome(name="churn", outcome="updated", commit="abc123")])
    _write_record(record, [Outcome(name="churn", outcome="failed", stage="locate")])
    kept = json.loads(record.read_text())["churn"]
    assert (kept["outcome"], kept["commit"]) == ("failed", "abc123")
    assert record.stat().st_mode & 0o777 == 0o644
    _write_record(record, [Outcome(name="churn", outcome="updated", commit="def456")])
    assert json.loads(record.read_text())["churn"]["commit"] == "def456"
    record.write_bytes(b"\xff\xfe not text")
    with pytest.raises(PavedError, match="is not a fleet record"):
        _write_record(record, [Outcome(name="churn")])


def _small_files() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))  # a disk that fills at 200 bytes


def test_a_full_disk_leaves_the_last_record_whole(tmp_path: Path) -> None:
    record = tmp_path / "v0.2.0.json"
    _write_record(record, [Outcome(name="churn", outcome="updated")])
    before = record.read_text()
    code = (
        "import sys; from pathlib import Path\n"
        "from paved.fleet.rollout import Outcome, _write_record\n"
        "_write_record(Path(sys.argv[1]), [Outcome(name='upsell', reason='x' * 4000)])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(record)],
        capture_output=True,
        text=True,
        preexec_fn=_small_files,
        timeout=60,
    )
    assert done.returncode != 0 and "could not be written" in done.stderr, done.stderr
    assert record.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v0.2.0.json", "v0.2.0.json.lock"]
    with pytest.raises(PavedError, match="could not be written"):
        _write_record(tmp_path / "v0.2.0.json" / "under-a-file.json", [Outcome(name="x")])


def test_the_report_is_printed_before_the_record_is_written(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    state = tmp_path / "state"
    state.write_text("a file where the record's folder should be")
    state_arg = [f"--state={state}", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "paved", "fleet", "update", str(fleet), "--to=v0.2.0", *state_arg],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["release"] == "v0.2.0"
    assert "the report above is complete, but the record" in done.stderr
