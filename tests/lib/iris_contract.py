"""The data contract of the tests' iris frame (columns sl, sw, pl, pw; integer species)."""

import pandera.pandas as pa
from paved_ml.contract import Contract


class Table(pa.DataFrameModel):
    sl: float = pa.Field(ge=0, le=30)
    sw: float = pa.Field(ge=0, le=30)
    pl: float = pa.Field(ge=0, le=30)
    pw: float = pa.Field(ge=0, le=30)
    species: int


CONTRACT = Contract(Table, target="species")
