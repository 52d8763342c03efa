"""The data contract of the tests' iris frame (columns sl, sw, pl, pw; integer species)."""

import pandera.pandas as pa
from paved_ml.contract import Contract


class Table(pa.DataFrameModel):
    sl: float = pa.Field(ge=0, le=30)
    sw: float = pa.Field(ge=0, le=30)
    pl: float = pa.Field(ge=0, le=30)
    pw: float = pa.Field(ge=0, le=30)
    species: int


#: Request rows for the smoke test (a row of each species).
EXAMPLES = [
    {"sl": 5.1, "sw": 3.5, "pl": 1.4, "pw": 0.2},
    {"sl": 6.0, "sw": 2.9, "pl": 4.5, "pw": 1.5},
    {"sl": 6.3, "sw": 3.3, "pl": 6.0, "pw": 2.5},
]

CONTRACT = Contract(Table, target="species", examples=EXAMPLES)


class TwoSpecies(Table):
    """A contract whose target allows only species 0 and 1: the model's 2 breaks it."""

    species: int = pa.Field(isin=[0, 1])


NARROW = Contract(TwoSpecies, target="species", examples=EXAMPLES)
WITHOUT_EXAMPLES = Contract(Table, target="species")
