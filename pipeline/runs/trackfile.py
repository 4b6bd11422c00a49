"""Reading track files: the JSON lines `pipeline.track` (or any program) appends, as records.

The parser never fails on what a stage wrote: a line that is not JSON, not an object, or not a
record of a known type with valid fields is skipped and counted, so a stage killed mid-write,
or a hand-written logger's mistake, costs those lines only. Valid means storable everywhere:
no NUL or lone surrogate in text (PostgreSQL and the UTF-8 codec refuse them, and one refused
row would lose the whole run's record), and keys MLflow could also hold as paths (not
absolute, no `..` part: an export writes each key as a file). Where the files live is here too:
`.pipeline/tmp/track/<run id>/<stage, quoted>.jsonl`, next to the run's journal.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRACK_DIR = Path("tmp") / "track"  # below the state directory (`.pipeline`)
PATH_MAX = 1000  # the run store's artifact path column
_NON_FINITE = {"NaN": math.nan, "nan": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_NON_FINITE.update({"inf": math.inf, "-inf": -math.inf})


def run_track_dir(state_dir: Path, run_id: str) -> Path:
    return state_dir / TRACK_DIR / run_id


def stage_file(folder: Path, stage: str) -> Path:
    """The track file of `stage` (names hold '/', ':' and '@': quoted into one file name)."""
    return folder / (urllib.parse.quote(stage, safe="") + ".jsonl")


def stage_of(path: Path) -> str:
    return urllib.parse.unquote(path.name.removesuffix(".jsonl"))


@dataclass(frozen=True)
class Point:
    """One logged metric value; `value` None is NaN (SQL has no NaN in SQLite)."""

    key: str
    step: int
    ts: float  # UNIX seconds
    seq: int
    value: float | None


@dataclass
class Parsed:
    """What one track file holds, in the order it was written."""

    metrics: list[Point] = field(default_factory=list)
    params: list[tuple[str, str]] = field(default_factory=list)  # key, JSON value
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    skipped: int = 0
    end: str | None = None  # a script run's final status


def parse_lines(data: bytes, default_ts: float) -> Parsed:
    """Every valid record in `data`; `default_ts` (seconds) for metrics logged without `ts`."""
    parsed = Parsed()
    step = 0
    for seq, raw in enumerate(data.split(b"\n")):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            step = _take(parsed, record, seq, step, default_ts)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError):
            parsed.skipped += 1  # RecursionError: `[[[…` nested past the JSON decoder's depth
    return parsed


def read_file(path: Path, default_ts: float) -> Parsed:
    try:
        data = path.read_bytes()
    except OSError:
        return Parsed()
    return parse_lines(data, default_ts)


def _take(parsed: Parsed, record: dict[str, Any], seq: int, step: int, ts: float) -> int:
    """Add one record; the current step after it. Raises on anything invalid."""
    kind = record["type"]
    if kind == "metric":
        at = step if record.get("step") is None else _int(record["step"])
        when = ts if record.get("ts") is None else _number(record["ts"]) / 1000.0
        if not math.isfinite(when):
            raise ValueError("ts")
        value = _number(record["value"])
        parsed.metrics.append(Point(_key(record["key"]), at, when, seq, _sql(value)))
    elif kind == "param":
        parsed.params.append((_key(record["key"]), json.dumps(record["value"], sort_keys=True)))
    elif kind == "tag":
        parsed.tags[_key(record["key"])] = _text(record["value"])
    elif kind == "artifact":
        path = _text(record["path"])
        if len(path) > PATH_MAX:
            raise ValueError("path")
        parsed.artifacts.append(path)
    elif kind == "step":
        return _int(record["step"])
    elif kind == "end":
        parsed.end = _text(record["status"])
    else:
        raise ValueError(kind)
    return step


def _key(value: Any) -> str:
    if not isinstance(value, str) or not value or ":" in value or len(value) > 400:
        raise ValueError("key")
    if value.startswith("/") or ".." in value.split("/"):
        raise ValueError("key")  # as a path it leaves the folder it is written into
    return _text(value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
        raise ValueError("step")
    return value


def _number(value: Any) -> float:
    if isinstance(value, str):
        return _NON_FINITE[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("value")
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("text")
    value.encode()  # a lone surrogate (`"\\ud800"` is valid JSON) raises UnicodeEncodeError
    return value


def _sql(value: float) -> float | None:
    return None if math.isnan(value) else value
