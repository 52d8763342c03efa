"""The data contract: the table's columns, declared once.

`prepare` validates the raw table against it (naming every column, check and row that
fails), the service takes its request model from it (types, ranges, allowed values), and
the drift report its columns ([tool.paved] contract names it). Change it here and the three
follow; a change of the input columns also needs a retrain (`uv run dvc repro`).
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


CONTRACT = Contract(Table, target="species")
