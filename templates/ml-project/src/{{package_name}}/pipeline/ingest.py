"""Ingest: write the raw table under data/raw.

The default source is a table that ships inside scikit-learn, so the pipeline runs with
no network. Replace `load()` with your own source (a warehouse query, files on the DVC
remote) and keep writing one CSV to RAW.
"""

import re

import pandas as pd
from sklearn import datasets

from ._common import RAW, params

LOADERS = {"iris": datasets.load_iris, "wine": datasets.load_wine}


def load(dataset: str) -> pd.DataFrame:
    """The named scikit-learn table with snake_case columns; the label (by name) is `species`."""
    if dataset not in LOADERS:
        raise SystemExit(f"ingest: unknown dataset {dataset!r} (choose from {sorted(LOADERS)})")
    bunch = LOADERS[dataset](as_frame=True)
    frame = bunch.frame
    frame["target"] = bunch.target_names[bunch.target]  # the class names, not their indices
    frame.columns = [re.sub(r"[^a-z0-9]+", "_", str(c).lower()).strip("_") for c in frame.columns]
    renamed: pd.DataFrame = frame.rename(columns={"target": "species"})
    return renamed


def main() -> None:
    frame = load(params("ingest")["dataset"])
    RAW.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RAW, index=False)
    print(f"ingest: wrote {len(frame)} rows to {RAW}")


if __name__ == "__main__":
    main()
