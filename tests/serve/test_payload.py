"""Request bodies against signatures (`pipeline.serve.payload`): the shapes, MLflow's type rules,
and, for any JSON or bytes at all, a `PayloadError` or a result and never another exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.serve.payload import Column, InputSchema, PayloadError, Tensor, parse

COLUMNS = InputSchema(
    columns=(
        Column("x", "double"),
        Column("n", "long"),
        Column("flag", "boolean"),
        Column("name", "string"),
        Column("extra", "double", required=False),
    )
)
TENSOR = InputSchema(tensors=(Tensor("float64", (-1, 3)),))
JSON = "application/json"


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_from_mlmodel_reads_column_and_tensor_specs() -> None:
    columns = [{"type": "double", "name": "a", "required": True}, {"type": "long", "name": "b"}]
    found = InputSchema.from_mlmodel({"signature": {"inputs": json.dumps(columns)}})
    assert found == InputSchema(columns=(Column("a", "double"), Column("b", "long")))
    tensor = [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]
    found = InputSchema.from_mlmodel({"signature": {"inputs": json.dumps(tensor)}})
    assert found == InputSchema(tensors=(Tensor("float32", (-1, 4)),))
    assert InputSchema.from_mlmodel({}) == InputSchema()


def test_every_shape_gives_rows_in_signature_order() -> None:
    record = {"name": "a", "flag": True, "n": 2, "x": 1}
    want = [[1.0, 2, True, "a", None]]
    shapes = [
        {"dataframe_records": [record]},
        {"instances": [record]},
        {"inputs": {k: [v] for k, v in record.items()}},
        {"dataframe_split": {"columns": list(record), "data": [list(record.values())]}},
        {"dataframe_split": {"data": [[1, 2, True, "a", None]]}},
    ]
    for shape in shapes:
        parsed = parse(body(shape), JSON, COLUMNS)
        assert parsed.columns == ["x", "n", "flag", "name", "extra"]
        assert parsed.rows == want


def test_ints_widen_to_double() -> None:
    parsed = parse(
        body({"inputs": {"x": [3], "n": [1], "flag": [False], "name": ["z"]}}), JSON, COLUMNS
    )
    assert parsed.rows[0][0] == 3.0
    assert isinstance(parsed.rows[0][0], float)


@pytest.mark.parametrize(
    ("column", "value"),
    [("x", True), ("x", "1.5"), ("n", 1.5), ("n", False), ("flag", 1), ("name", 3), ("x", None)],
)
def test_mlflow_type_rules(column: str, value: Any) -> None:
    record: dict[str, Any] = {"x": 1.0, "n": 1, "flag": True, "name": "a", column: value}
    with pytest.raises(PayloadError, match=repr(column)):
        parse(body({"dataframe_records": [record]}), JSON, COLUMNS)


def test_csv_cells_take_the_signature_types() -> None:
    text = b"name,flag,n,x\nab,true,4,2.5\nc,FALSE,5,1\n"
    parsed = parse(text, "text/csv", COLUMNS)
    assert parsed.rows == [[2.5, 4, True, "ab", None], [1.0, 5, False, "c", None]]


def test_content_types() -> None:
    ok = body({"inputs": [[1, 2, 3]]})
    assert parse(ok, "application/json; charset=UTF-8", TENSOR).rows == [[1, 2, 3]]
    for refused in (None, "", "text/html", "application/json; charset=latin-1", "text/csv; x=y"):
        with pytest.raises(PayloadError) as caught:
            parse(ok, refused, TENSOR)
        assert caught.value.status == 415


def test_error_body_is_mlflows_shape() -> None:
    with pytest.raises(PayloadError) as caught:
        parse(b"[]", JSON, COLUMNS)
    assert json.loads(caught.value.body()) == {
        "error_code": "BAD_REQUEST",
        "message": caught.value.message,
    }


def test_tensor_shapes() -> None:
    assert parse(body({"inputs": [[1, 2.5, 3]]}), JSON, TENSOR).rows == [[1, 2.5, 3]]
    for bad in ([[1, 2]], [1, 2, 3], [[[1, 2, 3]]], [[1, 2, 3], [1, 2]], [["a", 1, 2]]):
        with pytest.raises(PayloadError):
            parse(body({"inputs": bad}), JSON, TENSOR)


def test_deep_nesting_is_a_payload_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(PayloadError, match="nested too deeply"):
        parse(deep, JSON, COLUMNS)
    with pytest.raises(PayloadError):
        parse(body({"inputs": [[[[[[[[1]]]]]]]]}), JSON, TENSOR)


def test_without_signature_anything_tabular_goes() -> None:
    parsed = parse(body({"dataframe_records": [{"a": 1, "b": "x"}]}), JSON, InputSchema())
    assert (parsed.columns, parsed.rows) == (["a", "b"], [[1, "x"]])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
shape_keys = st.sampled_from(
    [
        "dataframe_split",
        "dataframe_records",
        "instances",
        "inputs",
        "params",
        "columns",
        "data",
        "x",
        "n",
    ]
)
shaped = st.dictionaries(shape_keys, json_values, max_size=3) | st.fixed_dictionaries(
    {},
    optional={
        "dataframe_split": st.fixed_dictionaries(
            {}, optional={"columns": json_values, "data": json_values}
        )
    },
)
schemas = st.sampled_from([COLUMNS, TENSOR, InputSchema()])


def _only_payload_errors(data: bytes, content_type: str, schema: InputSchema) -> None:
    try:
        parsed = parse(data, content_type, schema)
    except PayloadError as exc:
        assert exc.status in (400, 415)
        json.loads(exc.body())
        return
    json.loads(parsed.frame())  # what goes to the worker is JSON


@given(json_values | shaped, schemas)
def test_any_json_gives_rows_or_a_payload_error(value: Any, schema: InputSchema) -> None:
    _only_payload_errors(body(value), JSON, schema)


@given(st.binary(max_size=200), st.sampled_from([JSON, "text/csv"]), schemas)
def test_any_bytes_give_rows_or_a_payload_error(
    data: bytes, kind: str, schema: InputSchema
) -> None:
    _only_payload_errors(data, kind, schema)


@given(st.text(max_size=40), schemas)
def test_any_content_type_gives_rows_or_a_payload_error(kind: str, schema: InputSchema) -> None:
    _only_payload_errors(b'{"inputs": [[1, 2, 3]]}', kind, schema)
