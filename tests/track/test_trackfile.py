"""The track-file parser reads whatever a stage wrote: garbage is skipped and counted."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from pipeline.runs.trackfile import parse_lines

_keys = st.text(
    st.characters(blacklist_characters=":\n\r\x00", codec="utf-8"), min_size=1, max_size=20
).filter(lambda k: not k.startswith("/") and ".." not in k.split("/"))  # keys out: refused
_metric = st.fixed_dictionaries(
    {
        "type": st.just("metric"),
        "key": _keys,
        "value": st.floats(allow_nan=False, allow_infinity=False),
        "step": st.integers(0, 2**40),
    }
)
_garbage = st.binary(max_size=60).filter(lambda b: b"\n" not in b and b.strip() != b"")


@given(st.binary(max_size=2000))
def test_any_bytes_never_crash(data: bytes) -> None:
    parsed = parse_lines(data, 0.0)
    assert parsed.skipped + len(parsed.metrics) <= data.count(b"\n") + 1


@given(st.lists(st.one_of(_metric.map(lambda m: ("ok", m)), _garbage.map(lambda g: ("bad", g)))))
def test_valid_lines_are_kept_and_garbage_counted(lines: list[tuple[str, object]]) -> None:
    data = b"\n".join(
        json.dumps(item).encode() if kind == "ok" else item  # type: ignore[misc]
        for kind, item in lines
    )
    parsed = parse_lines(data, 5.0)
    kept = [item for kind, item in lines if kind == "ok"]
    bad = [item for kind, item in lines if kind == "bad"]
    assert [(p.key, p.step, p.value) for p in parsed.metrics] == [
        (m["key"], m["step"], m["value"])
        for m in kept  # type: ignore[index]
    ]
    # a garbage line that happens to be a valid record is kept, never counted as skipped
    assert len(parsed.metrics) + parsed.skipped >= len(kept)
    assert parsed.skipped <= len(bad)


def test_non_finite_values_and_defaults() -> None:
    data = b'{"type":"metric","key":"a","value":"NaN"}\n{"type":"step","step":4}\n' + (
        b'{"type":"metric","key":"b","value":"-Infinity","ts":2000}\n{"type":"metric","key":"c:d","value":1}'
    )
    parsed = parse_lines(data, 7.0)
    assert [(p.key, p.step, p.ts, p.value) for p in parsed.metrics] == [
        ("a", 0, 7.0, None),
        ("b", 4, 2.0, -math.inf),
    ]
    assert parsed.skipped == 1  # ':' is reserved for file metrics (`path:key`)
