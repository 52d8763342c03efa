"""paved_ml.prediction_log: sampled requests to Parquet files, rolled by rows or by age."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from paved_ml.errors import PavedMLError
from paved_ml.prediction_log import LogSettings, PredictionLog, read_prediction_log

pytestmark = pytest.mark.libs


def log_in(folder: Path, **settings: float) -> PredictionLog:
    return PredictionLog(
        LogSettings(folder=folder, **settings), model_name="iris", model_version="7"
    )


def files(folder: Path) -> list[Path]:
    return sorted(folder.glob("predictions-*.parquet"))


def test_requests_are_written_with_model_and_time_in_files_of_at_most_max_rows(
    tmp_path: Path,
) -> None:
    log = log_in(tmp_path, max_rows=5)
    for number in range(6):  # six requests of two rows: 12 rows (the last without ids)
        ids = [f"r{number}-0", f"r{number}-1"] if number < 5 else None
        log.record({"a": np.array([number, number]), "b": ["x", "y"]}, [number * 10] * 2, ids)
    log.close()
    sizes = [len(pd.read_parquet(path, engine="fastparquet")) for path in files(tmp_path)]
    assert sum(sizes) == 12 and max(sizes) == 4  # at most 5 rows, and no request split
    assert all(size % 2 == 0 for size in sizes)
    frame = read_prediction_log(tmp_path)
    assert list(frame.columns) == [
        "timestamp",
        "model_name",
        "model_version",
        "a",
        "b",
        "prediction",
        "prediction_id",
    ]
    assert frame["prediction_id"].tolist() == [
        *(f"r{n}-{row}" for n in range(5) for row in range(2)),
        None,
        None,
    ]
    assert frame["a"].tolist() == [n for n in range(6) for _ in range(2)]
    assert frame["prediction"].tolist() == [n * 10 for n in range(6) for _ in range(2)]
    assert set(frame["model_name"]) == {"iris"} and set(frame["model_version"]) == {"7"}
    assert str(frame["timestamp"].dt.tz) == "UTC" and frame["timestamp"].is_monotonic_increasing
    assert not list(tmp_path.glob(".*partial"))  # only whole files are left


def test_a_file_is_rolled_by_age_while_the_service_runs(tmp_path: Path) -> None:
    log = log_in(tmp_path, max_seconds=0.2)
    try:
        log.record({"a": [1.5]}, ["setosa"])
        deadline = time.monotonic() + 10
        while not files(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(files(tmp_path)) == 1  # written by the thread, before any close
        assert read_prediction_log(tmp_path)["prediction"].tolist() == ["setosa"]
    finally:
        log.close()


def test_the_rate_samples_requests(tmp_path: Path) -> None:
    log = log_in(tmp_path, rate=0.3)
    kept = sum(log.record({"a": [1]}, [0]) for _ in range(4000))
    log.close()
    assert 1000 < kept < 1400
    assert len(read_prediction_log(tmp_path)) == kept


def test_a_full_queue_drops_requests_instead_of_growing(tmp_path: Path) -> None:
    log = log_in(tmp_path, max_pending=3, max_rows=1000, max_seconds=60)
    kept = sum(log.record({"a": [1]}, [0]) for _ in range(10))
    log.close()
    assert kept + log.dropped == 10 and log.dropped >= 1
    assert len(read_prediction_log(tmp_path)) == kept


def test_settings_come_from_the_environment_and_bad_ones_name_the_variable(
    tmp_path: Path,
) -> None:
    assert LogSettings.from_env({}) is None  # off unless configured
    env = {"PAVED_PREDICTION_LOG": str(tmp_path), "PAVED_PREDICTION_LOG_RATE": "0.25"}
    settings = LogSettings.from_env({**env, "PAVED_PREDICTION_LOG_MAX_BYTES": "1000000"})
    assert settings == LogSettings(folder=tmp_path, rate=0.25, max_bytes=1_000_000)
    bad = (("RATE", "often"), ("RATE", "2"), ("ROWS", "0"), ("SECONDS", "-1"), ("MAX_BYTES", "0"))
    for name, value in bad:
        with pytest.raises(PavedMLError, match=f"PAVED_PREDICTION_LOG_{name}="):
            LogSettings.from_env({**env, f"PAVED_PREDICTION_LOG_{name}": value})


def test_reading_a_missing_or_empty_log_says_so(tmp_path: Path) -> None:
    with pytest.raises(PavedMLError, match=r"no prediction log at .*set PAVED_PREDICTION_LOG"):
        read_prediction_log(tmp_path / "nowhere")
    with pytest.raises(PavedMLError, match="is empty: no requests recorded yet"):
        read_prediction_log(tmp_path)


def test_a_folder_that_cannot_be_made_fails_no_request_and_is_tried_again(
    tmp_path: Path,
) -> None:
    # The folder was made at start-up only, raising: the service never answered /livez.
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the log's parent folder should be")
    seen: list[tuple[str, int]] = []
    log = log_in(blocker / "log")  # no error: the service starts
    log.on_problem = lambda kind, count: seen.append((kind, count))
    assert log.record({"a": np.array([1, 2])}, [10, 20])
    log.flush()
    assert log.problems == {"unwritable rows": 2} and seen == [("unwritable rows", 2)]
    blocker.unlink()  # the storage comes back: the next write makes the folder
    log.record({"a": np.array([3])}, [30])
    log.close()
    assert read_prediction_log(blocker / "log")["a"].tolist() == [3]


def test_a_folder_deleted_while_serving_is_made_again(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    log = log_in(folder)
    log.record({"a": np.array([1])}, [10])
    log.flush()
    shutil.rmtree(folder)
    log.record({"a": np.array([2])}, [20])
    log.close()
    assert read_prediction_log(folder)["a"].tolist() == [2]
    assert log.problems == {}


def test_the_oldest_files_go_first_when_the_log_passes_its_size_cap(tmp_path: Path) -> None:
    probe = log_in(tmp_path / "probe")
    probe.record({"a": np.arange(100)}, list(range(100)))
    probe.close()
    size = files(tmp_path / "probe")[0].stat().st_size
    folder = tmp_path / "log"
    log = log_in(folder, max_bytes=int(size * 2.5))
    for number in range(5):  # five files of about `size` bytes, oldest first
        log.record({"a": np.arange(100) + 1000 * number}, list(range(100)))
        log.flush()
        time.sleep(0.002)  # file names carry the time of their first row
    log.close()
    assert len(files(folder)) == 2
    assert sorted(set(read_prediction_log(folder)["a"] // 1000)) == [3, 4]  # the newest kept
    assert log.problems == {"deleted files": 3}
    assert sum(path.stat().st_size for path in files(folder)) <= size * 2.5


def test_a_full_disk_still_gets_room_back_from_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cap ran only after a write that succeeded: once the log had filled the disk, every
    # write failed and the oldest files were never deleted.
    folder = tmp_path / "log"
    filler = log_in(folder)
    for number in range(3):
        filler.record({"a": np.arange(100) + 1000 * number}, list(range(100)))
        filler.flush()
        time.sleep(0.002)
    filler.close()
    size = max(path.stat().st_size for path in files(folder))
    log = log_in(folder, max_bytes=int(size * 1.5))

    def disk_full(batches: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(log, "_write_file", disk_full)
    log.record({"a": np.array([1])}, [10])
    log.flush()
    assert log.problems == {"unwritable rows": 1, "deleted files": 2}
    assert sorted(set(read_prediction_log(folder)["a"] // 1000)) == [2]  # the newest is kept
    log.close()
