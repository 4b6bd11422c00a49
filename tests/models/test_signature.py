"""Signature inference: MLflow's column types for every column dtype, tensor specs for arrays,
records, and the JSON strings MLmodel stores surviving a round trip.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import ModelError
from pipeline.models.signature import ColSpec, Signature, TensorSpec, infer

# numpy dtype → the type MLflow's `_infer_numpy_dtype` gives it
DTYPES = {
    "bool": "boolean",
    "int8": "integer",
    "int16": "integer",
    "int32": "integer",
    "int64": "long",
    "uint8": "integer",
    "uint16": "integer",
    "uint32": "long",
    "float32": "float",
    "float64": "double",
    "datetime64[ns]": "datetime",
}
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
columns = st.dictionaries(names, st.sampled_from([*DTYPES, "str", "bytes"]), min_size=1)


def column(dtype: str, rows: int) -> pd.Series:
    if dtype == "str":
        return pd.Series([f"v{i}" for i in range(rows)], dtype=object)
    if dtype == "bytes":
        return pd.Series([b"v%d" % i for i in range(rows)], dtype=object)
    return pd.Series(np.zeros(rows).astype(dtype))


@given(columns, st.integers(1, 4))
def test_every_column_gets_mlflows_type(spec: dict[str, str], rows: int) -> None:
    sample = pd.DataFrame({name: column(dtype, rows) for name, dtype in spec.items()})
    expected = {"str": "string", "bytes": "binary", **DTYPES}
    signature = infer(sample)
    assert signature.inputs == tuple(ColSpec(expected[d], n) for n, d in spec.items())
    assert Signature.from_mlmodel(signature.to_mlmodel()) == signature
    assert signature.columns == list(spec)


@given(st.sampled_from(["float32", "float64", "int64"]), st.integers(1, 5), st.integers(1, 4))
def test_arrays_get_a_tensor_spec_with_a_free_batch_axis(dtype: str, rows: int, n: int) -> None:
    signature = infer(np.zeros((rows, n), dtype=dtype), np.zeros(rows, dtype="int64"))
    assert signature.inputs == (TensorSpec(dtype, (-1, n)),)
    assert signature.outputs == (TensorSpec("int64", (-1,)),)
    assert signature.columns is None
    assert Signature.from_mlmodel(signature.to_mlmodel()) == signature


def test_the_stored_strings_read_as_mlflows() -> None:
    stored = infer(pd.DataFrame({"a": [1.0]}), np.array([1])).to_mlmodel()
    assert stored == {
        "inputs": '[{"type": "double", "name": "a", "required": true}]',
        "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]',
        "params": None,
    }


def test_records_give_columns_and_optional_ones_where_missing() -> None:
    signature = infer([{"a": 1, "b": "x"}, {"a": 2.5, "c": True}])
    assert signature.inputs == (
        ColSpec("double", "a"),
        ColSpec("string", "b", required=False),
        ColSpec("boolean", "c", required=False),
    )


def test_mixed_values_in_a_column_are_an_error() -> None:
    with pytest.raises(ModelError, match="column 'a'"):
        infer(pd.DataFrame({"a": ["x", 1]}, dtype=object))


def test_a_sample_of_another_kind_is_an_error() -> None:
    with pytest.raises(ModelError, match="cannot infer a signature from a str"):
        infer("rows")


def test_outputs_of_a_series_and_a_frame() -> None:
    sample = pd.DataFrame({"a": [1.0]})
    assert infer(sample, pd.Series([1.0], name="y")).outputs == (ColSpec("double"),)
    framed = infer(sample, pd.DataFrame({"p": [0.5], "q": ["x"]}))
    assert framed.outputs == (ColSpec("double", "p"), ColSpec("string", "q"))
    assert json.loads(framed.to_mlmodel()["outputs"])[1] == {
        "type": "string",
        "name": "q",
        "required": True,
    }
