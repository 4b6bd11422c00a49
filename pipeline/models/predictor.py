"""A loaded model that answers rows: `load(path, info)` then `predict(columns, rows)`.

Input arrives as JSON rows (from the scoring server's worker): it becomes a pandas DataFrame
when there are column names (cast to the signature's column types), else a numpy array (of the
signature's tensor dtype); predictions go back as plain lists.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ModelError
from pipeline.models import flavors
from pipeline.models.lazy import library
from pipeline.models.mlmodel import ModelInfo
from pipeline.models.signature import ColSpec, TensorSpec

# numpy dtypes of MLflow's column types, for casting JSON values as the model was fitted
_COLUMN_DTYPES = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": "object",
    "binary": "object",
    "datetime": "datetime64[ns]",
}


@dataclass(frozen=True)
class Predictor:
    """A model object with the package it came from."""

    info: ModelInfo
    model: Any = field(repr=False)

    def predict(self, columns: list[str] | None, rows: list[list[Any]]) -> list[Any]:
        """Predictions for `rows` (named by `columns`, or a plain array) as JSON-able values."""
        data = self._frame(columns, rows) if columns is not None else self._array(rows)
        if self.info.flavor == "xgboost" and type(self.model).__name__ == "Booster":
            data = library("xgboost").DMatrix(data)
        return to_json(self.model.predict(data))

    def _frame(self, columns: list[str], rows: list[list[Any]]) -> Any:
        """A DataFrame of the signature's column types, built from numpy arrays: casting a
        built frame column by column costs a millisecond a request, this tens of µs."""
        try:
            pd = library("pandas")
        except ImportError:
            return self._array(rows)
        dtypes = [self._dtypes.get(name) for name in columns]
        if len(set(dtypes)) == 1 and dtypes[0] not in (None, "object"):
            try:
                array = library("numpy").asarray(rows, dtype=dtypes[0])
                return pd.DataFrame(array, columns=columns)
            except (TypeError, ValueError):
                pass  # a misfit: found and named column by column below
        pairs = enumerate(zip(columns, dtypes, strict=True))
        data = {n: _column(rows, i, n, t) for i, (n, t) in pairs}
        return pd.DataFrame(data, columns=columns)

    @functools.cached_property
    def _dtypes(self) -> dict[str, str]:
        specs = self.info.signature.inputs if self.info.signature else ()
        return {
            s.name: _COLUMN_DTYPES[s.type]
            for s in specs
            if isinstance(s, ColSpec) and s.name is not None and s.type in _COLUMN_DTYPES
        }

    def _array(self, rows: list[list[Any]]) -> Any:
        np = library("numpy")
        specs = self.info.signature.inputs if self.info.signature else ()
        dtype = specs[0].dtype if len(specs) == 1 and isinstance(specs[0], TensorSpec) else None
        try:
            return np.asarray(rows, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"input does not fit a {dtype or 'numeric'} array: {exc}") from None


def _column(rows: list[list[Any]], index: int, name: str, dtype: str | None) -> Any:
    """Column `index` of `rows` as a numpy array of `dtype` (inferred when None)."""
    values = [row[index] for row in rows]
    try:
        return library("numpy").asarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"column {name!r}: values do not fit {dtype}: {exc}") from None



def to_json(value: Any) -> list[Any]:
    """Predictions as plain lists: numpy via `.tolist()`, frames as records."""
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return list(value.to_dict(orient="records"))
    if hasattr(value, "tolist"):
        result = value.tolist()
        return result if isinstance(result, list) else [result]
    return list(value)


def load(path: Path | str, info: ModelInfo, *, trusted: bool = False) -> Predictor:
    """The model of the package at `path`; pickle and untrusted skops types need `trusted`."""
    file = Path(path) / info.model_file
    if not file.is_file():
        raise ModelError(f"{file}: the package's model file is missing")
    return Predictor(info, flavors.read(info.flavor, file, info.native, trusted=trusted))
