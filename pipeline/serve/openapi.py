"""The model's signature as an OpenAPI 3 description of `/invocations`, and Ebonite's interface.

Served at `/openapi.json` (any OpenAPI tool can show or call the model) and `/interface.json`.
The request schema offers each of MLflow's input shapes for the model's columns (or its tensor),
with the package's serving input example; the response is `{"predictions": [...]}`.
Standard library only, like the rest of the server's front.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline._version import __version__
from pipeline.serve.payload import Column, InputSchema, Tensor

_JSON_TYPES: dict[str, dict[str, Any]] = {
    "double": {"type": "number"},
    "float": {"type": "number"},
    "long": {"type": "integer", "format": "int64"},
    "integer": {"type": "integer", "format": "int32"},
    "boolean": {"type": "boolean"},
    "string": {"type": "string"},
    "binary": {"type": "string", "format": "byte"},
    "datetime": {"type": "string", "format": "date-time"},
}
_ERROR = {
    "type": "object",
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
}


def openapi(mlmodel: dict[str, Any], example: Any = None) -> dict[str, Any]:
    """An OpenAPI 3.0 document for the scoring endpoints of the model `mlmodel` describes."""
    schema = InputSchema.from_mlmodel(mlmodel)
    body: dict[str, Any] = {"schema": _request(schema)}
    if example is not None:
        body["example"] = example
    return {
        "openapi": "3.0.3",
        "info": {"title": "pipeline model server", "version": __version__},
        "paths": {
            "/invocations": {"post": _invocations(body, _outputs(mlmodel))},
            "/ping": {"get": _simple("200 once the model is loaded and its worker alive")},
            "/health": {"get": _simple("the same as /ping")},
            "/version": {"get": _simple("the version of pipeline serving the model")},
        },
        "components": {"schemas": {"Error": _ERROR}},
    }


def _invocations(body: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    predictions = {"type": "object", "properties": {"predictions": outputs}}
    return {
        "summary": "Predict with the model",
        "requestBody": {
            "required": True,
            "content": {"application/json": body, "text/csv": {"schema": {"type": "string"}}},
        },
        "responses": {
            "200": {
                "description": "the predictions",
                "content": {"application/json": {"schema": predictions}},
            },
            "400": {"description": "the input does not fit the signature", "content": error},
            "413": {"description": "the body is over the size limit", "content": error},
            "415": {"description": "unsupported content type", "content": error},
            "500": {"description": "the model failed", "content": error},
            "503": {"description": "the model worker is not running", "content": error},
        },
    }


def _simple(description: str) -> dict[str, Any]:
    return {"responses": {"200": {"description": description}}}


def _request(schema: InputSchema) -> dict[str, Any]:
    if schema.tensors:
        tensor = _tensor(schema.tensors[0])
        return _one_of({"inputs": tensor, "instances": tensor})
    if not schema.columns:
        return {"type": "object"}
    columns = {c.name or str(i): _column(c) for i, c in enumerate(schema.columns)}
    required = [c.name for c in schema.columns if c.required and c.name]
    record = {"type": "object", "properties": columns, "required": required}
    records = {"type": "array", "items": record}
    split = {
        "type": "object",
        "properties": {
            "columns": {"type": "array", "items": {"type": "string", "enum": list(columns)}},
            "data": {"type": "array", "items": {"type": "array"}},
        },
        "required": ["data"],
    }
    return _one_of({"dataframe_split": split, "dataframe_records": records, "instances": records})


def _one_of(shapes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    params = {"type": "object", "additionalProperties": True}
    return {
        "oneOf": [
            {
                "type": "object",
                "properties": {key: schema, "params": params},
                "required": [key],
                "additionalProperties": False,
            }
            for key, schema in shapes.items()
        ]
    }


def _column(column: Column) -> dict[str, Any]:
    found: dict[str, Any] = dict(_JSON_TYPES.get(column.type, {}))
    if not column.required:
        found["nullable"] = True
    return found


def _tensor(tensor: Tensor) -> dict[str, Any]:
    leaf: dict[str, Any] = {"type": "number"}
    if tensor.dtype.startswith(("int", "uint")):
        leaf = {"type": "integer"}
    elif tensor.dtype == "bool":
        leaf = {"type": "boolean"}
    elif tensor.dtype in ("str", "object"):
        leaf = {"type": "string"}
    schema = leaf
    for size in reversed(tensor.shape or (-1,)):
        schema = {"type": "array", "items": schema}
        if size != -1:
            schema.update(minItems=size, maxItems=size)
    return schema


def _outputs(mlmodel: dict[str, Any]) -> dict[str, Any]:
    signature = mlmodel.get("signature") or {}
    text = signature.get("outputs") if isinstance(signature, dict) else None
    specs = json.loads(text) if isinstance(text, str) else []
    if len(specs) == 1 and specs[0].get("type") in _JSON_TYPES:
        return {"type": "array", "items": _JSON_TYPES[specs[0]["type"]]}
    return {"type": "array"}


def interface(mlmodel: dict[str, Any], source: str, versions: dict[str, Any]) -> dict[str, Any]:
    """Ebonite's `/interface.json`: the one method, its input and output specs, the env."""
    signature = mlmodel.get("signature") or {}
    own = mlmodel.get("pipeline") or {}
    return {
        "model": source,
        "flavor": own.get("flavor") if isinstance(own, dict) else None,
        "methods": {
            "predict": {
                "route": "/invocations",
                "inputs": _specs(signature, "inputs"),
                "outputs": _specs(signature, "outputs"),
            }
        },
        "versions": versions,
    }


def _specs(signature: Any, side: str) -> Any:
    text = signature.get(side) if isinstance(signature, dict) else None
    return json.loads(text) if isinstance(text, str) else text
