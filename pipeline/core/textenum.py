"""`TextEnum`: an enum whose members are their text, in f-strings and JSON alike.

The standard library's `StrEnum` (Python 3.11+) with the same behaviour on 3.10: `str()` and
`format()` give the value ("failed"), never the member's name ("RunStatus.FAILED").
"""

from __future__ import annotations

from enum import Enum


class TextEnum(str, Enum):
    """A `str` enum that prints as its value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)
