"""A model's signature: MLflow column and tensor specs, inferred from a sample and its predictions.

MLflow stores each side as a JSON *string* inside MLmodel (`signature.inputs`/`outputs`); the
key order of each spec follows MLflow's own `to_dict`, so the strings read the same as its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ModelError
from pipeline.models.lazy import library

COLUMN_TYPES = ("boolean", "integer", "long", "float", "double", "string", "binary", "datetime")


@dataclass(frozen=True)
class ColSpec:
    """One column: an MLflow type name, the column name (None for unnamed outputs), required."""

    type: str
    name: str | None = None
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type}
        if self.name is not None:
            data["name"] = self.name
        data["required"] = self.required
        return data


@dataclass(frozen=True)
class TensorSpec:
    """An array: numpy dtype name and shape, -1 where any size goes (the batch axis)."""

    dtype: str
    shape: tuple[int, ...]
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {} if self.name is None else {"name": self.name}
        data["type"] = "tensor"
        data["tensor-spec"] = {"dtype": self.dtype, "shape": list(self.shape)}
        return data


Spec = ColSpec | TensorSpec


@dataclass(frozen=True)
class Signature:
    """Inputs and (when known) outputs of a model."""

    inputs: tuple[Spec, ...]
    outputs: tuple[Spec, ...] | None = None

    @property
    def columns(self) -> list[str] | None:
        """The input column names, or None for tensor (or unnamed) inputs."""
        names = [s.name for s in self.inputs if isinstance(s, ColSpec)]
        if not names or len(names) != len(self.inputs) or None in names:
            return None
        return [n for n in names if n is not None]

    def to_mlmodel(self) -> dict[str, Any]:
        outputs = None if self.outputs is None else _dumps(self.outputs)
        return {"inputs": _dumps(self.inputs), "outputs": outputs, "params": None}

    @classmethod
    def from_mlmodel(cls, data: dict[str, Any]) -> Signature:
        """The signature of an MLmodel's `signature` mapping; ModelError when malformed."""
        if not isinstance(data, dict) or not isinstance(data.get("inputs"), str):
            raise ModelError("signature: `inputs` must be a JSON string of specs")
        outputs = data.get("outputs")
        return cls(_loads(data["inputs"]), None if outputs is None else _loads(outputs))


def _dumps(specs: tuple[Spec, ...]) -> str:
    return json.dumps([s.to_dict() for s in specs])


def _loads(text: Any) -> tuple[Spec, ...]:
    try:
        items = json.loads(text)
        return tuple(_spec(item) for item in items)
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelError(f"signature: malformed spec list {text!r}: {exc}") from None


def _spec(item: dict[str, Any]) -> Spec:
    if item["type"] == "tensor":
        spec = item["tensor-spec"]
        shape = tuple(int(n) for n in spec["shape"])
        return TensorSpec(str(spec["dtype"]), shape, item.get("name"))
    if item["type"] not in COLUMN_TYPES:
        raise ValueError(f"unknown column type {item['type']!r}")
    return ColSpec(item["type"], item.get("name"), bool(item.get("required", True)))


# -- inference ---------------------------------------------------------------------------------


def infer(sample: Any, predictions: Any = None) -> Signature:
    """The signature of a sample (DataFrame, 2-D ndarray, list of dicts) and its predictions."""
    outputs = None if predictions is None else _infer_side(predictions, outputs=True)
    return Signature(_infer_side(sample, outputs=False), outputs)


def _infer_side(data: Any, *, outputs: bool) -> tuple[Spec, ...]:
    kind = type(data).__module__.split(".")[0]
    if kind == "pandas":
        return _pandas_specs(data)
    if kind == "numpy":
        return (_tensor_spec(data),)
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        return _records_specs(data)
    if isinstance(data, list | tuple) and outputs:
        return (_tensor_spec(library("numpy").asarray(data)),)
    raise ModelError(
        f"cannot infer a signature from a {type(data).__name__}",
        "pass a pandas DataFrame, a 2-D numpy array or a list of dicts as `sample`",
    )


def _tensor_spec(array: Any) -> TensorSpec:
    if array.dtype.kind == "O":
        raise ModelError("cannot infer a tensor spec from an object array", "use a DataFrame")
    return TensorSpec(str(array.dtype), (-1, *(int(n) for n in array.shape[1:])))


def _pandas_specs(data: Any) -> tuple[Spec, ...]:
    if hasattr(data, "columns"):  # a DataFrame
        return tuple(ColSpec(_column_type(data[c], str(c)), str(c)) for c in data.columns)
    return (ColSpec(_column_type(data, str(data.name)), None),)  # a Series (predictions)


def numpy_type(dtype: Any) -> str | None:
    """MLflow's column type of a numpy dtype, as MLflow's `_infer_numpy_dtype` maps it."""
    kind, size = dtype.kind, dtype.itemsize
    if kind == "b":
        return "boolean"
    if kind == "i":
        return "long" if size == 8 else "integer"
    if kind == "u":
        return "integer" if size < 4 else "long" if size == 4 else "double"
    if kind == "f":
        return "double" if size == 8 else "float"
    return {"U": "string", "S": "binary", "M": "datetime"}.get(kind)


def _column_type(column: Any, name: str) -> str:
    dtype = column.dtype
    if str(dtype) == "category":
        return _column_type(column.astype(dtype.categories.dtype), name)
    numpy_dtype = getattr(dtype, "numpy_dtype", dtype)  # nullable Int64, boolean, ...
    if str(dtype).startswith(("string", "str")):
        return "string"
    found = numpy_type(numpy_dtype) if getattr(numpy_dtype, "kind", "O") != "O" else None
    if found is not None:
        return found
    return _values_type([v for v in column.tolist() if v is not None], name)


def _records_specs(rows: list[dict[str, Any]]) -> tuple[Spec, ...]:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    specs = []
    for name in names:
        values = [row[name] for row in rows if row.get(name) is not None]
        specs.append(ColSpec(_values_type(values, name), str(name), len(values) == len(rows)))
    return tuple(specs)


def _values_type(values: list[Any], name: str) -> str:
    """The MLflow type of plain Python values; ints mixed with floats are doubles."""
    kinds = {_python_type(v) for v in values}
    if kinds == {"long", "double"}:
        return "double"
    if len(kinds) == 1:
        (kind,) = kinds
        if kind is not None:
            return kind
    raise ModelError(
        f"column {name!r}: cannot infer one type from values of types "
        f"{sorted({type(v).__name__ for v in values})}",
        "give the column one type (bool, int, float, str or bytes)",
    )


def _python_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "binary"
    return "datetime" if type(value).__name__ in ("datetime", "Timestamp") else None
