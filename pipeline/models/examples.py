"""MLflow's input example files: `input_example.json` and `serving_input_example.json`.

Frames are stored in pandas' `split` orient without the index (as MLflow does), arrays as
`{"inputs": ...}`; the serving file is the same data wrapped as a request body. Only the first
rows of the sample are kept: an example documents the input, it is not a data set.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import Path
from typing import Any

EXAMPLE = "input_example.json"
SERVING = "serving_input_example.json"
ROWS = 5


def write_examples(sample: Any, dest: Path) -> dict[str, Any]:
    """Write both example files of `sample` into `dest`; MLmodel's `saved_input_example_info`."""
    info: dict[str, Any] = {"artifact_path": EXAMPLE, "serving_input_path": SERVING}
    if type(sample).__module__.split(".")[0] == "numpy":
        example: dict[str, Any] = {"inputs": sample[:ROWS].tolist()}
        serving: dict[str, Any] = example
        info.update(type="ndarray", format="tf-serving")
    else:
        example = _split(sample)
        serving = {"dataframe_split": example}
        info.update(type="dataframe", pandas_orient="split")
    (dest / EXAMPLE).write_text(_dumps(example), encoding="utf-8")
    (dest / SERVING).write_text(_dumps(serving, indent=2), encoding="utf-8")
    return info


def _split(sample: Any) -> dict[str, Any]:
    if isinstance(sample, list):  # records
        columns = list(dict.fromkeys(k for row in sample for k in row))
        rows = [[row.get(c) for c in columns] for row in sample[:ROWS]]
        return {"columns": columns, "data": rows}
    frame = sample.head(ROWS).to_dict(orient="split")
    return {"columns": [str(c) for c in frame["columns"]], "data": frame["data"]}


def _dumps(data: Any, indent: int | None = None) -> str:
    return json.dumps(_plain(data), indent=indent, allow_nan=False)


def _plain(value: Any) -> Any:
    """JSON-able values: numpy scalars unwrapped, dates as ISO text, NaN as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # a numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
