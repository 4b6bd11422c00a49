"""`did you mean 'x'?`: the hint for a name that is close to a known one."""

from __future__ import annotations

import difflib


def closest(name: str, known: list[str]) -> str | None:
    """The known name nearest to `name`, if any is near enough to be a slip."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return close[0] if close else None


def suggest_name(name: str, known: list[str], fallback: str) -> str:
    """`did you mean 'x'?` for a near miss, else `fallback`."""
    close = closest(name, known)
    return f"did you mean {close!r}?" if close is not None else fallback
