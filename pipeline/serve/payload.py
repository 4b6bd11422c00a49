"""A scoring request's body → the rows the model predicts on, checked against its signature.

MLflow's scoring protocol: an `application/json` body holds exactly one of `dataframe_split`,
`dataframe_records`, `instances` or `inputs` (and optionally `params`); a `text/csv` body is a
header line and rows. The result is `(columns, rows)` in the signature's order (columns None for
a tensor), so the worker only builds a frame or an array. Every misfit is a `PayloadError`,
which the server sends as MLflow's error JSON with status 400 (415 for a content type it does
not speak). Pure Python and standard library only: it runs in the server's interpreter, which in a
container holds nothing but starlette, uvicorn and the model's libraries.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

SHAPES = ("dataframe_split", "dataframe_records", "instances", "inputs")
_NUMBER = ("double", "float")
_INTEGER = ("long", "integer")
_BITS = {"integer": 32, "long": 64}  # MLflow's int32 and int64: wider values overflow numpy
_MAX_SHOWN = 5  # names listed in a message before "…"


class PayloadError(Exception):
    """A request the model cannot take; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def body(self) -> bytes:
        """MLflow's error shape, so MLflow clients show the message."""
        return json.dumps({"error_code": "BAD_REQUEST", "message": self.message}).encode()


@dataclass(frozen=True)
class Column:
    """One column of a column signature (MLflow's ColSpec as written in MLmodel)."""

    name: str | None
    type: str
    required: bool = True


@dataclass(frozen=True)
class Tensor:
    """One tensor input (MLflow's TensorSpec): numpy dtype name and shape, -1 for any size."""

    dtype: str
    shape: tuple[int, ...]
    name: str | None = None


@dataclass(frozen=True)
class InputSchema:
    """What `/invocations` accepts; empty when the model has no signature (anything goes)."""

    columns: tuple[Column, ...] = ()
    tensors: tuple[Tensor, ...] = ()

    @property
    def names(self) -> list[str]:
        return [c.name or str(i) for i, c in enumerate(self.columns)]

    @classmethod
    def from_mlmodel(cls, mlmodel: dict[str, Any]) -> InputSchema:
        """The input half of an MLmodel's `signature` (its `inputs` is a JSON string)."""
        signature = mlmodel.get("signature") or {}
        inputs = signature.get("inputs") if isinstance(signature, dict) else None
        specs = json.loads(inputs) if isinstance(inputs, str) else inputs or []
        tensors = [s for s in specs if s.get("type") == "tensor"]
        if tensors:
            return cls(tensors=tuple(_tensor(s) for s in tensors))
        columns = (
            Column(s.get("name"), str(s.get("type")), s.get("required", True)) for s in specs
        )
        return cls(columns=tuple(columns))


def _tensor(spec: dict[str, Any]) -> Tensor:
    detail = spec.get("tensor-spec") or {}
    shape = tuple(int(n) for n in detail.get("shape") or ())
    return Tensor(str(detail.get("dtype", "")), shape, spec.get("name"))


@dataclass(frozen=True)
class Parsed:
    """A checked request: rows in signature order (a tensor's batch when `columns` is None)."""

    columns: list[str] | None
    rows: list[Any]
    params: dict[str, Any] = field(default_factory=dict)

    def frame(self) -> bytes:
        """The worker's request frame body."""
        return json.dumps({"columns": self.columns, "rows": self.rows}).encode()


def parse(body: bytes, content_type: str | None, schema: InputSchema) -> Parsed:
    """Parse and check one request body; raises `PayloadError` and nothing else."""
    mime = _media_type(content_type)
    if mime == "text/csv":
        columns, rows = _csv(_text(body), schema)
        return _checked(columns, rows, schema, {})
    document = _json(body)
    shape, data, params = _shape(document)
    if schema.tensors:
        return Parsed(None, _tensor_rows(shape, data, schema.tensors), params)
    columns, rows = _tabular(shape, data, schema)
    return _checked(columns, rows, schema, params)


def _media_type(content_type: str | None) -> str:
    supported = "application/json or text/csv"
    if not content_type:
        raise PayloadError(f"no Content-Type: this server accepts {supported}", 415)
    mime, *options = (part.strip() for part in content_type.split(";"))
    if mime.lower() not in ("application/json", "text/csv"):
        raise PayloadError(f"Content-Type {mime!r} is not supported: send {supported}", 415)
    for option in options:
        key, _, value = option.partition("=")
        if key.strip().lower() != "charset" or value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise PayloadError(f"Content-Type option {option!r} is not supported (utf-8 only)", 415)
    return mime.lower()


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(_text(body))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise PayloadError(f"malformed JSON: {exc.msg} at {where}") from None
    except RecursionError:  # nesting deeper than the parser's stack
        raise PayloadError("malformed JSON: nested too deeply") from None
    except ValueError as exc:  # an integer longer than Python converts (4300 digits)
        raise PayloadError(f"malformed JSON: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def _shape(document: Any) -> tuple[str, Any, dict[str, Any]]:
    """Which of MLflow's four input fields the body uses, its value, and `params`."""
    expected = "a JSON dictionary with exactly one of the input fields " + ", ".join(SHAPES)
    if not isinstance(document, dict):
        raise PayloadError(f"the body must be {expected}; received {_kind(document)}")
    found = [key for key in SHAPES if key in document]
    extra = sorted(set(document) - {*SHAPES, "params"})
    if len(found) != 1 or extra:
        got = ", ".join(sorted(map(str, document))) or "none"
        raise PayloadError(f"the body must be {expected} (and optionally params); got: {got}")
    params = document.get("params", {})
    if not isinstance(params, dict):
        raise PayloadError(f"params must be a JSON dictionary, not {_kind(params)}")
    return found[0], document[found[0]], params


def _kind(value: Any) -> str:
    names = {dict: "a dictionary", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _tabular(shape: str, data: Any, schema: InputSchema) -> tuple[list[str], list[Any]]:
    """Columns and rows of a column-signature (or signature-less) request."""
    if shape == "dataframe_split":
        return _split(data, schema)
    if shape == "dataframe_records":
        return _records(data, shape)
    if isinstance(data, dict):  # `inputs`/`instances` given column-wise: {col: [values]}
        return _columnar(data, shape)
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        return _records(data, shape)
    if isinstance(data, list) and schema.columns:
        return schema.names, data
    raise PayloadError(
        f"{shape} must be a list of records, a dictionary of columns"
        + (" or a list of rows" if schema.columns else "")
    )


def _split(data: Any, schema: InputSchema) -> tuple[list[str], list[Any]]:
    if not isinstance(data, dict) or "data" not in data:
        raise PayloadError('dataframe_split must be a dictionary with "data" (and "columns")')
    unknown = sorted(set(data) - {"columns", "data", "index"}, key=str)
    if unknown:
        raise PayloadError(f"dataframe_split has unknown keys: {', '.join(map(str, unknown))}")
    columns = data.get("columns", schema.names if schema.columns else None)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise PayloadError("dataframe_split.columns must be a list of column names")
    return columns, data["data"]


def _records(data: Any, shape: str) -> tuple[list[str], list[Any]]:
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise PayloadError(f"{shape} must be a list of records ({{column: value}} dictionaries)")
    columns: dict[str, None] = {}
    for record in data:
        columns.update(dict.fromkeys(record))
    names = list(columns)
    return names, [[record.get(name) for name in names] for record in data]


def _columnar(data: dict[str, Any], shape: str) -> tuple[list[str], list[Any]]:
    values = list(data.values())
    if not all(isinstance(v, list) for v in values) or len({len(v) for v in values}) > 1:
        raise PayloadError(f"{shape} given as columns needs lists of one length per column")
    return list(data), [list(row) for row in zip(*values, strict=True)]


def _csv(text: str, schema: InputSchema) -> tuple[list[str], list[Any]]:
    try:
        table = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise PayloadError(f"malformed CSV: {exc}") from None
    if not table:
        raise PayloadError("the CSV body is empty: send a header line and rows")
    types = {c.name: c.type for c in schema.columns}
    header = table[0]
    rows = [
        [_from_csv(v, types.get(n)) for n, v in zip(header, row, strict=False)]
        for row in table[1:]
        if row
    ]
    return header, rows


def _from_csv(value: str, kind: str | None) -> Any:
    """A CSV cell as the signature's type; as a number when it reads as one and no type is known."""
    if value == "":
        return None
    readers: list[Any]
    if kind in _INTEGER:
        readers = [int, float]  # a float here is then refused with the column's name
    elif kind in _NUMBER:
        readers = [float]
    elif kind == "boolean":
        return {"true": True, "false": False}.get(value.lower(), value)
    elif kind is None:
        readers = [int, float]
    else:
        return value
    for read in readers:
        try:
            return read(value)
        except ValueError:
            continue
    return value


def _checked(
    columns: list[str], rows: list[Any], schema: InputSchema, params: dict[str, Any]
) -> Parsed:
    """Rows reordered to the signature, every value of the column's type."""
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise PayloadError("the data must be a list of rows (lists of values)")
    if not rows:
        raise PayloadError("the request has no rows to predict")
    width = len(columns)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise PayloadError(f"row {i} has {len(row)} values for {width} columns")
    if len(set(columns)) != width:
        raise PayloadError("column names repeat: " + _list(sorted(_repeats(columns))))
    if not schema.columns:
        return Parsed(columns, rows, params)
    order = _order(columns, schema)
    ordered = [[_value(row, at, spec, i) for at, spec in order] for i, row in enumerate(rows)]
    return Parsed(schema.names, ordered, params)


def _repeats(columns: list[str]) -> set[str]:
    seen: set[str] = set()
    return {c for c in columns if c in seen or seen.add(c)}  # type: ignore[func-returns-value]


def _order(columns: list[str], schema: InputSchema) -> list[tuple[int | None, Column]]:
    """For each signature column, where the request has it (None: absent and optional)."""
    names = schema.names
    unknown = [c for c in columns if c not in names]
    missing = [c.name or "" for c in schema.columns if c.required and c.name not in columns]
    if missing:
        raise PayloadError(f"Model is missing inputs {_list(missing)}; it takes {_list(names)}")
    if unknown:
        raise PayloadError(f"unknown columns {_list(unknown)}; the model takes {_list(names)}")
    where = {name: i for i, name in enumerate(columns)}
    return [(where.get(name), spec) for name, spec in zip(names, schema.columns, strict=True)]


def _list(names: list[str]) -> str:
    shown = [repr(n) for n in names[:_MAX_SHOWN]]
    return "[" + ", ".join(shown) + (", …]" if len(names) > _MAX_SHOWN else "]")


def _value(row: list[Any], at: int | None, spec: Column, index: int) -> Any:
    value = None if at is None else row[at]
    if value is None:
        if spec.required:
            raise PayloadError(f"row {index}: column {spec.name!r} is required but missing (null)")
        return None
    fitted = _fit(value, spec.type)
    if fitted is _OUT_OF_RANGE:
        raise PayloadError(
            f"row {index}: column {spec.name!r} takes {spec.type}, "
            f"and {_show(value)} is out of its range"
        )
    if fitted is _MISFIT:
        raise PayloadError(
            f"row {index}: column {spec.name!r} takes {spec.type}, "
            f"got {_kind(value)} {_show(value)}"
        )
    return fitted


_MISFIT = object()
_OUT_OF_RANGE = object()


def _fit(value: Any, kind: str) -> Any:
    """MLflow's rules: ints widen to double/float, a bool is no number, strings stay strings."""
    if kind in _NUMBER:
        return _fit_number(value)
    if kind in _INTEGER:
        if not isinstance(value, int) or isinstance(value, bool):
            return _MISFIT
        return value if _fits_bits(value, _BITS[kind]) else _OUT_OF_RANGE
    if kind == "boolean":
        return value if isinstance(value, bool) else _MISFIT
    if kind in ("string", "binary", "datetime"):
        return value if isinstance(value, str) else _MISFIT
    return value  # a type this server does not check: the model decides


def _fit_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _MISFIT
    try:
        return float(value)
    except OverflowError:  # an int beyond any double (about 309 digits)
        return _OUT_OF_RANGE


def _fits_bits(value: int, bits: int, *, signed: bool = True) -> bool:
    if signed:
        return -(1 << (bits - 1)) <= value < 1 << (bits - 1)
    return 0 <= value < 1 << bits


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _tensor_rows(shape: str, data: Any, tensors: tuple[Tensor, ...]) -> list[Any]:
    """A tensor request's batch, checked against the (single) tensor spec."""
    if len(tensors) > 1:
        raise PayloadError("models with several tensor inputs are not served yet")
    spec = tensors[0]
    if shape in ("dataframe_split", "dataframe_records"):
        raise PayloadError(f"this model takes a tensor: send {{'inputs': [...]}}, not {shape}")
    if isinstance(data, dict):
        if list(data) != [spec.name]:
            raise PayloadError(f"{shape} names tensors {_list(list(data))}; expected {spec.name!r}")
        data = data[spec.name]
    if not isinstance(data, list):
        raise PayloadError(f"{shape} must be a (nested) list for a tensor input")
    _check_tensor(data, spec)
    return data


def _check_tensor(data: list[Any], spec: Tensor) -> None:
    dims = _dims(data, len(spec.shape) or None)
    if spec.shape and len(dims) != len(spec.shape):
        raise PayloadError(
            f"the tensor has {len(dims)} dimensions {list(dims)}; the model takes shape "
            f"{list(spec.shape)}"
        )
    for i, (got, want) in enumerate(zip(dims, spec.shape, strict=True)):
        if want not in (-1, got):
            raise PayloadError(
                f"dimension {i} of the tensor is {got}; the model takes shape {list(spec.shape)}"
            )
    for leaf in _leaves(data, len(dims)):
        if not _dtype_fits(leaf, spec.dtype):
            raise PayloadError(f"the tensor takes {spec.dtype}, got {_kind(leaf)} {_show(leaf)}")
        if not _in_range(leaf, spec.dtype):
            raise PayloadError(f"the tensor takes {spec.dtype}, and {_show(leaf)} is out of range")


def _dims(data: list[Any], depth: int | None) -> tuple[int, ...]:
    """The shape of a nested list; ragged lists are refused. Walks no deeper than `depth`."""
    dims: list[int] = []
    level: list[Any] = [data]
    while level and all(isinstance(x, list) for x in level):
        sizes = {len(x) for x in level}
        if len(sizes) != 1:
            raise PayloadError(f"the tensor is ragged at dimension {len(dims)}")
        dims.append(sizes.pop())
        if depth is not None and len(dims) > depth:
            raise PayloadError(f"the tensor has more than the model's {depth} dimensions")
        level = [y for x in level for y in x]
    if level and any(isinstance(x, list) for x in level):
        raise PayloadError(f"the tensor is ragged at dimension {len(dims)}")
    return tuple(dims)


def _leaves(data: list[Any], depth: int) -> Iterator[Any]:
    level: list[Any] = data
    for _ in range(depth - 1):
        level = [y for x in level for y in x]
    yield from level


def _in_range(value: Any, dtype: str) -> bool:
    """Whether numpy can hold a fitting int in `dtype` (it raises OverflowError otherwise)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return True
    if dtype.startswith(("float", "double")):
        try:
            float(value)
        except OverflowError:  # beyond any double (about 309 digits)
            return False
        return True
    bits = dtype.removeprefix("u").removeprefix("int")
    if not dtype.startswith(("int", "uint")) or not bits.isdigit():
        return True  # `int` without a size, or a dtype this server does not check
    return _fits_bits(value, int(bits), signed=not dtype.startswith("u"))


def _dtype_fits(value: Any, dtype: str) -> bool:
    if isinstance(value, dict):
        return False
    if dtype.startswith(("float", "double")):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype.startswith(("int", "uint")):
        return isinstance(value, int) and not isinstance(value, bool)
    if dtype == "bool":
        return isinstance(value, bool)
    if dtype in ("str", "object"):
        return isinstance(value, str) or dtype == "object"
    return True  # a dtype this server does not check: the model decides
