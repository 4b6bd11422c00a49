"""Reading plot data: every format, DVC's shapes, and garbage (always our error)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import DataError
from pipeline.plots.data import parse_rows


def test_tsv_and_csv_with_a_header_row_and_numbers() -> None:
    assert parse_rows("a.tsv", b"step\tloss\tname\n0\t1.5\tx\n1\t1e-3\t007x\n") == [
        {"step": 0, "loss": 1.5, "name": "x"},
        {"step": 1, "loss": 0.001, "name": "007x"},
    ]
    assert parse_rows("a.csv", b'\xef\xbb\xbfa,b\n1,"2,5"\n') == [{"a": 1, "b": "2,5"}]
    assert parse_rows("a.csv", b"a,b\n1_000,nan\n") == [{"a": "1_000", "b": "nan"}]


def test_json_records_and_dvc_mapping() -> None:
    assert parse_rows("a.json", b'[{"x": 1, "y": 2}]') == [{"x": 1, "y": 2}]
    data = b'{"train": [{"x": 1}, {"x": 2}], "meta": 3}'
    assert parse_rows("a.json", data) == [{"x": 1}, {"x": 2}]
    assert parse_rows("a.json", b'{"acc": 0.9}') == [{"acc": 0.9}]
    assert parse_rows("a.json", b'[{"x": NaN, "n": {"a": 1}}]') == [{"x": None, "n": '{"a": 1}'}]


def test_yaml_records() -> None:
    assert parse_rows("a.yaml", b"prc:\n  - {r: 0.1, p: 1}\n") == [{"r": 0.1, "p": 1}]
    assert parse_rows("a.yml", b"- {r: 1}\n") == [{"r": 1}]


@pytest.mark.parametrize(
    ("name", "raw"),
    [("a.json", b"[1, 2]"), ("a.json", b"{"), ("a.yaml", b"a: [b"), ("a.csv", b"\xff\xfe\x00")],
)
def test_garbage_is_a_data_error_naming_the_file(name: str, raw: bytes) -> None:
    with pytest.raises(DataError, match=rf"^{name}: cannot read plot data") as caught:
        parse_rows(name, raw)
    assert caught.value.hint


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["a.tsv", "a.csv", "a.json", "a.yaml"]),
    st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
)
def test_any_bytes_give_records_or_our_error(name: str, raw: bytes) -> None:
    try:
        rows = parse_rows(name, raw)
    except DataError as exc:
        assert exc.message.startswith(f"{name}: ")
        return
    assert all(isinstance(r, dict) and all(isinstance(k, str) for k in r) for r in rows)
