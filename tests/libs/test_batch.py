"""paved_ml.batch and `paved-ml batch-predict`: the champion over files, a chunk at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from paved_ml.batch import batch_predict, parse_size
from paved_ml.cli import main
from paved_ml.errors import PavedMLError

from tests.lib.helpers import fit
from tests.lib.iris_contract import CONTRACT

pytestmark = pytest.mark.libs

FEATURES = ["sl", "sw", "pl", "pw"]


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory, iris: pd.DataFrame) -> Path:
    root = tmp_path_factory.mktemp("batch")
    model = fit(iris, 1.0)
    path = root / "champion"
    signature = infer_signature(iris[FEATURES], model.predict(iris[FEATURES]))
    mlflow.sklearn.save_model(model, path, signature=signature)
    (path / "champion.json").write_text(json.dumps({"model_name": "iris", "version": "4"}))
    return path


def rows(count: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.uniform(0.1, 7.0, size=(count, 4)).round(3), columns=FEATURES)
    return frame.assign(request_id=[f"r{seed}-{i}" for i in range(count)])


def test_a_folder_of_csv_and_parquet_is_scored_in_chunks_with_the_model_version(
    champion: Path, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    first, second = rows(2500, 1), rows(1200, 2)
    first.to_csv(tmp_path / "in" / "a.csv", index=False)
    second.to_parquet(tmp_path / "in" / "b.parquet")
    (tmp_path / "in" / "notes.txt").write_text("not scored")
    report = batch_predict(
        tmp_path / "in",
        tmp_path / "out.parquet",
        model_dir=champion,
        contract=CONTRACT,
        chunk_rows=1000,
    )
    assert (report.rows, report.chunks, len(report.files)) == (3700, 5, 2)
    scored = pd.read_parquet(tmp_path / "out.parquet", engine="fastparquet")
    both = pd.concat([first, second], ignore_index=True)
    model = mlflow.sklearn.load_model(str(champion))
    assert scored["request_id"].tolist() == both["request_id"].tolist()  # ids pass through
    assert scored["prediction"].tolist() == model.predict(both[FEATURES]).tolist()
    probabilities = scored[["probability_0", "probability_1", "probability_2"]].sum(axis=1)
    assert np.allclose(probabilities, 1.0)
    assert set(scored["model_version"]) == {"4"} and set(scored["model_name"]) == {"iris"}


def test_a_bad_chunk_names_the_file_column_and_rows_and_leaves_no_output(
    champion: Path, tmp_path: Path
) -> None:
    frame = rows(3000, 3)
    frame.loc[[2500, 2710], "pl"] = -1.0  # in the third chunk: rows count through the file
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(PavedMLError) as failure:
        batch_predict(
            tmp_path / "bad.csv",
            tmp_path / "out.parquet",
            model_dir=champion,
            contract=CONTRACT,
            chunk_rows=1000,
        )
    message = str(failure.value)
    assert "bad.csv" in message
    assert "column 'pl': greater_than_or_equal_to(0) failed in rows 2500, 2710" in message
    assert not list(tmp_path.glob("*out.parquet*"))  # no output, not even a partial one


def test_the_cli_scores_and_refuses_bad_input_with_a_message(
    champion: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows(50, 4).to_csv(tmp_path / "in.csv", index=False)
    common = ["--model", str(champion), "--contract", "tests.lib.iris_contract:CONTRACT"]
    out = tmp_path / "scored" / "p.parquet"
    assert main(["batch-predict", str(tmp_path / "in.csv"), "--output", str(out), *common]) == 0
    assert "batch-predict: 50 rows from 1 files in 1 chunks, scored by iris v4" in (
        capsys.readouterr().out
    )
    assert len(pd.read_parquet(out, engine="fastparquet")) == 50
    rows(5, 5).drop(columns="pw").to_csv(tmp_path / "short.csv", index=False)
    for source, message in (
        (tmp_path / "nowhere", "no input at"),
        (tmp_path / "short.csv", "short.csv: no column 'pw'"),
    ):
        assert main(["batch-predict", str(source), *common]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    with pytest.raises(PavedMLError, match="memory limit 'lots'"):
        parse_size("lots")
    assert parse_size("512MB") == 512 << 20 and parse_size("2GiB") == 2 << 30


PEAK = """
import resource, sys
from pathlib import Path
from tests.lib.iris_contract import CONTRACT
from paved_ml.batch import batch_predict
folder = Path(sys.argv[1])
kwargs = dict(model_dir=folder.parent / "champion", contract=CONTRACT, memory_limit=16 << 20)
batch_predict(folder / "small.csv", folder / "small.parquet", **kwargs)  # every code path warm
if sys.argv[2] == "big":
    batch_predict(folder / "big.csv", folder / "big.parquet", **kwargs)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def test_a_file_larger_than_the_memory_limit_scores_within_it(
    champion: Path, tmp_path: Path
) -> None:
    """16 MB for data, a 40 MB CSV: the peak RSS grows less than the limit over a warm run."""
    folder = champion.parent / "peak"
    folder.mkdir()
    rows(100, 6).to_csv(folder / "small.csv", index=False)
    rows(1_200_000, 7).to_csv(folder / "big.csv", index=False)
    assert (folder / "big.csv").stat().st_size > 2 * (16 << 20)
    peaks = {}
    for mode in ("small", "big"):
        done = subprocess.run(
            [sys.executable, "-c", PEAK, str(folder), mode],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},  # tests.lib
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        peaks[mode] = int(done.stdout.strip().splitlines()[-1])
    assert (
        len(pd.read_parquet(folder / "big.parquet", columns=["prediction"], engine="fastparquet"))
        == 1_200_000
    )
    assert peaks["big"] - peaks["small"] < 16 << 20, peaks
