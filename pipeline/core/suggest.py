"""`did you mean 'x'?`: the hint for a name that is close to a known one."""

from __future__ import annotations

import difflib


def suggest_name(name: str, known: list[str], fallback: str) -> str:
    """`did you mean 'x'?` for a near miss, else `fallback`."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}?" if close else fallback
