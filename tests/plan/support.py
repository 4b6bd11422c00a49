"""Projects shared by the planning tests (and the execution tests of the same flags)."""

from __future__ import annotations

from tests.conftest import record

CHAIN = {
    "stages": {
        "a": {"cmd": f"{record('a')}; echo a > a.txt", "outs": ["a.txt"]},
        "b": {"cmd": f"{record('b')}; cat a.txt > b.txt", "deps": ["a.txt"], "outs": ["b.txt"]},
        "c": {"cmd": f"{record('c')}; cat b.txt > c.txt", "deps": ["b.txt"], "outs": ["c.txt"]},
    }
}
