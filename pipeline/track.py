"""Logging params, step-wise metrics, tags and artifacts from stage code: `pipeline.track`.

    from pipeline import track
    track.log_params({"lr": 0.1})
    for epoch in range(10):
        track.log_metric("train/loss", loss, step=epoch)

Each call appends one JSON line to `$PIPELINE_TRACK_FILE`, which the runner sets for every stage
(with `PIPELINE_RUN_ID` and `PIPELINE_STAGE`); the runner ingests the file into the run store
when the stage ends. The wire format is the whole protocol, so any language can log by appending
lines (`echo '{"type":"metric","key":"loss","value":0.3,"step":2}' >> "$PIPELINE_TRACK_FILE"`):

    {"type":"metric","key":K,"value":V,"step":N,"ts":MS}   ts: UNIX milliseconds (optional)
    {"type":"param","key":K,"value":JSON}                   written once per run
    {"type":"tag","key":K,"value":STR}
    {"type":"artifact","path":P}                            relative to the stage's directory
    {"type":"step","step":N}                                what `next_step()` moved to

Why a file: no network and no server, nothing to import but the standard library (this module
runs inside stage envs through the PYTHONPATH shim, `env/stagepath.py`), and crash-safe: the file
stays open in append mode and each line is one `write` call, so a SIGKILL keeps every line
logged before it and never leaves half a line. A call costs a few microseconds.

Outside the runner (a plain `python train.py`), the first call starts a run of kind `script`:
its track file and a `run.json` header go under the project's `.pipeline/tmp/track/<run id>/`
(the project is found by walking up from the working directory), and the next `pipeline`
command that opens the run store (`pipeline runs`, `repro`, ...) records it. Nothing is spawned
and nothing heavy is imported at exit: the script only appends an `end` line saying how it
ended; a script killed before that is recorded as interrupted.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import secrets
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "current_step",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "next_step",
    "set_tag",
]

TRACK_DIR = Path(".pipeline") / "tmp" / "track"  # where script runs keep their lines
_PROJECT_MARKERS = (".pipeline", "pipeline.lock", ".dvc", "dvc.yaml", "MLproject")


class _Sink:
    """The open track file and the current step; one per process."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.step = 0
        self.params: dict[str, str] = {}
        self.keys: dict[str, str] = {}  # key -> its JSON text: keys repeat, encode once

    def write(self, line: str) -> None:
        os.write(self.fd, line.encode())  # one call: a line is whole or absent

    def key(self, key: str) -> str:
        text = self.keys.get(key)
        if text is None:
            if not isinstance(key, str) or not key or ":" in key:
                raise ValueError(f"invalid key {key!r}: a non-empty string without ':'")
            text = self.keys[key] = json.dumps(key)
        return text


class _State:
    sink: _Sink | None = None  # opened at the first call: importing costs nothing


_state = _State()


def _get() -> _Sink:
    if _state.sink is None:
        path = os.environ.get("PIPELINE_TRACK_FILE")
        _state.sink = _Sink(path) if path else _script_sink()
    return _state.sink


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Log `value` of metric `key` at `step` (default: the current step, see `next_step`)."""
    sink = _state.sink or _get()
    if type(value) is not float:  # int, bool, numpy scalars: all become floats
        value = float(value)
    if value - value != 0.0:  # inf or NaN: not JSON numbers, so strings (as DVCLive does)
        text = '"NaN"' if math.isnan(value) else ('"Infinity"' if value > 0 else '"-Infinity"')
    else:
        text = repr(value)
    at = sink.step if step is None else int(step)
    ts = int(time.time() * 1000)
    sink.write(f'{{"type":"metric","key":{sink.key(key)},"value":{text},"step":{at},"ts":{ts}}}\n')


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log several metrics at one step."""
    for key, value in metrics.items():
        log_metric(key, value, step)


def log_param(key: str, value: Any) -> None:
    """Log a param; params are written once per run, so another value for `key` is an error."""
    sink = _state.sink or _get()
    text = json.dumps(value, sort_keys=True, default=str)
    known = sink.params.get(key)
    if known is not None and known != text:
        raise ValueError(
            f"param {key!r} was logged as {known}, not {text}: params are written once"
        )
    sink.params[key] = text
    sink.write(f'{{"type":"param","key":{sink.key(key)},"value":{text}}}\n')


def log_params(params: Mapping[str, Any]) -> None:
    """Log several params."""
    for key, value in params.items():
        log_param(key, value)


def set_tag(key: str, value: Any) -> None:
    """Tag the run (a later value replaces an earlier one)."""
    sink = _state.sink or _get()
    sink.write(f'{{"type":"tag","key":{sink.key(key)},"value":{json.dumps(str(value))}}}\n')


def log_artifact(path: str | os.PathLike[str]) -> None:
    """Note a file the stage wrote (its path and content hash are recorded, not a copy).

    To keep the bytes, declare the file as one of the stage's `outs`: they are cached.
    """
    sink = _state.sink or _get()
    sink.write(json.dumps({"type": "artifact", "path": os.path.abspath(path)}) + "\n")


def next_step() -> int:
    """Move to the next step (metrics logged without `step=` go there); the new step."""
    sink = _state.sink or _get()
    sink.step += 1
    sink.write(f'{{"type":"step","step":{sink.step}}}\n')
    return sink.step


def current_step() -> int:
    return _get().step


# --- outside the runner: a run of its own ------------------------------------------------------


def _script_sink() -> _Sink:
    """Start a `script` run: a directory with its header, then the track file."""
    root = _project_root(Path.cwd())
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    folder = root / TRACK_DIR / run_id
    folder.mkdir(parents=True, exist_ok=True)
    header = {
        "id": run_id,
        "kind": "script",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "started_at": time.time(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "cwd": str(Path.cwd()),
    }
    tmp = folder / ".run.json.tmp"
    tmp.write_text(json.dumps(header))
    os.replace(tmp, folder / "run.json")  # whole or absent for the tool reading it
    sink = _Sink(str(folder / "script.jsonl"))
    _watch_exit(sink)
    return sink


def _project_root(start: Path) -> Path:
    """The nearest folder at or above `start` that looks like a project; else `start`."""
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in _PROJECT_MARKERS):
            return folder
    return start


def _watch_exit(sink: _Sink) -> None:
    """At exit, append how the script ended (an uncaught exception: failed)."""
    failed: list[bool] = []
    previous = sys.excepthook

    def hook(*exc: Any) -> None:
        failed.append(True)
        previous(*exc)

    sys.excepthook = hook

    def end() -> None:
        status = "failed" if failed else "succeeded"
        end = {"type": "end", "status": status, "ts": int(time.time() * 1000)}
        sink.write(json.dumps(end) + "\n")

    atexit.register(end)
