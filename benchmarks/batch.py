"""Batch scoring: `paved_ml.batch.batch_predict` against one `model.predict` over the whole file.

    python3 ci/dev.py bench batch [--rows 2000000] [--memory-limit 64MB]

An iris champion (MLflow, scikit-learn) and its pandera contract; a CSV of `--rows` rows.
Each contender runs in its own process, which loads the model and scores the file into
Parquet: (a) the anchor reads the whole file with pandas, calls `predict` and
`predict_proba` once and writes the result; (b) `batch_predict` with `--memory-limit`,
which also validates every chunk against the contract. The table gives rows/s and the peak
resident memory of each (ru_maxrss), and what each grew by over the same process that
scored a 100-row file (imports and the model); the anchor's file is read whole, so its
growth is the file's size in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.targets import Target, report

ROOT = Path(__file__).resolve().parents[1]
#: The contract of the committed example repo: the template's, rendered.
CONTRACT_SOURCE = ROOT / "examples" / "iris-demo" / "src"
RUN = """
import resource, sys, time
from pathlib import Path
scratch, mode, source, limit = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
import mlflow.sklearn, pandas as pd
from iris_demo.contract import CONTRACT
from paved_ml.batch import batch_predict
model_dir = scratch / "champion"
out = scratch / f"{mode}-{source.stem}.parquet"
started = time.perf_counter()
if mode == "anchor":
    model = mlflow.sklearn.load_model(str(model_dir))
    frame = pd.read_csv(source)
    frame["prediction"] = model.predict(frame[CONTRACT.features])
    for label, column in zip(model.classes_, model.predict_proba(frame[CONTRACT.features]).T):
        frame[f"probability_{label}"] = column
    frame.to_parquet(out)
else:
    batch_predict(source, out, model_dir=model_dir, contract=CONTRACT, memory_limit=limit)
seconds = time.perf_counter() - started
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--memory-limit", default="64MB")
    args = parser.parse_args()
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from paved_ml.batch import parse_size
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    limit = parse_size(args.memory_limit)
    with tempfile.TemporaryDirectory(prefix="paved-bench-batch-") as tmp:
        scratch = Path(tmp)
        iris = load_iris(as_frame=True)
        features = iris.frame.iloc[:, :4].set_axis(
            ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"], axis=1
        )
        labels = iris.target_names[iris.target]
        model = LogisticRegression(max_iter=500).fit(features, labels)
        mlflow.sklearn.save_model(
            model, scratch / "champion", signature=infer_signature(features, labels)
        )
        (scratch / "champion" / "champion.json").write_text(
            json.dumps({"model_name": "iris", "version": "1"})
        )
        rng = np.random.default_rng(0)
        for name, count in (("small", 100), ("big", args.rows)):
            values = rng.uniform(0.1, 7.0, size=(count, 4)).round(3)
            pd.DataFrame(values, columns=features.columns).to_csv(
                scratch / f"{name}.csv", index=False
            )
        size = (scratch / "big.csv").stat().st_size
        results = {}
        for mode in ("anchor", "batch_predict"):
            measured = {}
            for name in ("small", "big"):
                done = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        RUN,
                        str(scratch),
                        mode,
                        str(scratch / f"{name}.csv"),
                        str(limit),
                    ],
                    env={**os.environ, "PYTHONPATH": str(CONTRACT_SOURCE)},  # iris_demo
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=3600,
                )
                seconds, peak = done.stdout.split()
                measured[name] = (float(seconds), int(peak))
            results[mode] = measured
    print(f"\n{args.rows} rows, CSV {size / 1e6:.0f} MB, memory limit {args.memory_limit}\n")
    print(f"| {'contender':<40} | {'rows/s':>10} | {'peak MB':>8} | {'grew MB':>8} |")
    print(f"|{'-' * 42}|{'-' * 12}|{'-' * 10}|{'-' * 10}|")
    names = {
        "anchor": "(a) one model.predict over the whole file",
        "batch_predict": "(b) batch_predict, chunks + contract",
    }
    grew = {mode: m["big"][1] - m["small"][1] for mode, m in results.items()}
    for mode, measured in results.items():
        seconds, peak = measured["big"]
        cells = f"{args.rows / seconds:>10.0f} | {peak / 1e6:>8.0f} | {grew[mode] / 1e6:>8.0f}"
        print(f"| {names[mode]:<40} | {cells} |")
    speed = results["anchor"]["big"][0] / results["batch_predict"]["big"][0]
    memory = grew["batch_predict"] / max(1, grew["anchor"])
    print(f"\nbatch_predict: {speed:.2f}x the anchor's rows/s, {memory:.2f}x its memory growth")
    within = grew["batch_predict"] < limit
    measure = "batch_predict's memory growth"
    figure = f"{grew['batch_predict'] / 1e6:.0f} MB"
    return report([Target(measure, figure, f"< {args.memory_limit}", within)])


if __name__ == "__main__":
    raise SystemExit(main())
