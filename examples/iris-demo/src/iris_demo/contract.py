"""The data contract: the table's columns, declared once.

`prepare` validates the raw table against it (naming every column, check and row that
fails), the service takes its request model from it (types, ranges, allowed values), the
drift report its columns ([tool.paved] contract names it), and the smoke test after a
deploy its example rows. Change it here and the rest follow; a change of the input
columns also needs a retrain (`uv run dvc repro`).
"""

import pandera.pandas as pa
from paved_ml.contract import Contract


class Table(pa.DataFrameModel):
    """One row: four measurements in cm (the model's inputs) and the species (its target)."""

    sepal_length_cm: float = pa.Field(ge=0, le=30)
    sepal_width_cm: float = pa.Field(ge=0, le=30)
    petal_length_cm: float = pa.Field(ge=0, le=30)
    petal_width_cm: float = pa.Field(ge=0, le=30)
    species: str = pa.Field(isin=["setosa", "versicolor", "virginica"])

    class Config:
        """A column the contract does not declare is refused."""

        strict = True


# `paved-ml smoke` sends these rows to a deployed service (one of each species).
EXAMPLES = [
    {"sepal_length_cm": 5.1, "sepal_width_cm": 3.5, "petal_length_cm": 1.4, "petal_width_cm": 0.2},
    {"sepal_length_cm": 6.0, "sepal_width_cm": 2.9, "petal_length_cm": 4.5, "petal_width_cm": 1.5},
    {"sepal_length_cm": 6.3, "sepal_width_cm": 3.3, "petal_length_cm": 6.0, "petal_width_cm": 2.5},
]

CONTRACT = Contract(Table, target="species", examples=EXAMPLES)
