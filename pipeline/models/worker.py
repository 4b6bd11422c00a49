"""The model worker: loads one model package and answers predictions over stdin/stdout frames.

`pipeline serve` runs the HTTP front in the tool's interpreter and this loop in the model's own
env (`<env python> -c serve.app.WORKER_BOOT`, which runs `main` here without the current
directory on sys.path), so the model's libraries never meet the tool's.
A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON (contract §3):

- in: `{"path": DIR, "info": <MLmodel dict>, "trusted": bool}`;
  out: `{"ready": true, "versions": {...}}`, or `{"error", "hint", "kind": "load"}` and exit 3;
- then per request in: `{"columns": [...] | null, "rows": [...]}`;
  out: `{"predictions": [...]}` or `{"error": msg, "kind": "input" | "model"}`.

A prediction frame starts with the bytes `{"predictions":`, so the front passes it on as the
response body without parsing it. Standard library and `pipeline.models` only.
"""

from __future__ import annotations

import json
import os
import platform
import struct
import sys
from pathlib import Path
from typing import IO, Any

from pipeline._version import __version__
from pipeline.errors import PipelineError

HEADER = struct.Struct(">I")
PREDICTIONS = b'{"predictions":'
EXIT_LOAD_FAILED = 3
_INPUT_ERRORS = (ValueError, TypeError, KeyError, IndexError, PipelineError)


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame's JSON value; None at end of input (the front closed the pipe)."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    return json.loads(body)


def write_frame(stream: IO[bytes], body: bytes) -> None:
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


def encode(value: Any) -> bytes:
    """Compact JSON; NaN and infinities as JSON cannot carry them are written as null."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        return json.dumps(_finite(value), separators=(",", ":")).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if value - value == 0 else None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _frames_out() -> IO[bytes]:
    """The protocol's own copy of stdout; fd 1 then goes to stderr, so a model that prints
    (a library's progress message) cannot corrupt the frames."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def load(first: dict[str, Any]) -> Any:
    """The predictor for the first frame's package."""
    # loaded after the frame streams are set up, so an import's output goes to stderr
    from pipeline.models.mlmodel import parse_mlmodel  # noqa: PLC0415
    from pipeline.models.predictor import load as load_predictor  # noqa: PLC0415

    path = Path(first["path"])
    info = parse_mlmodel(first["info"], path)
    return load_predictor(path, info, trusted=bool(first.get("trusted")))


def versions() -> dict[str, str]:
    """What the env runs: Python, pipeline and the model libraries that are loaded."""
    from importlib import metadata  # noqa: PLC0415 - once, after loading

    found = {"python": platform.python_version(), "pipeline": __version__}
    for module, dist in _LIBRARIES.items():
        if module in sys.modules:
            try:
                found[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
    return found


_LIBRARIES = {
    "numpy": "numpy",
    "pandas": "pandas",
    "sklearn": "scikit-learn",
    "skops": "skops",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
}


def predict(predictor: Any, request: dict[str, Any]) -> bytes:
    """One answer frame; an exception becomes an error frame, never the end of the worker."""
    try:
        predictions = predictor.predict(request.get("columns"), request["rows"])
    except _INPUT_ERRORS as exc:
        return encode({"error": _one_line(exc), "kind": "input"})
    except Exception as exc:  # the model's own failure: reported, and the next request served
        return encode({"error": _one_line(exc), "kind": "model"})
    return encode({"predictions": predictions})


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return f"{type(exc).__name__}: {message}"[:500]


def main() -> int:
    """The worker's loop; returns its exit code."""
    stdin = sys.stdin.buffer
    out = _frames_out()
    first = read_frame(stdin)
    if first is None:
        return 0
    try:
        predictor = load(first)
    except PipelineError as exc:
        write_frame(out, encode({"error": exc.message, "hint": exc.hint, "kind": "load"}))
        return EXIT_LOAD_FAILED
    except Exception as exc:
        failure = {"error": _one_line(exc), "hint": None, "kind": "load"}
        write_frame(out, encode(failure))
        return EXIT_LOAD_FAILED
    write_frame(out, encode({"ready": True, "versions": versions()}))
    while (request := read_frame(stdin)) is not None:
        write_frame(out, predict(predictor, request))
    return 0


if __name__ == "__main__":
    sys.exit(main())
