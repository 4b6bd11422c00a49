"""Projects shared by the execution tests (and the CLI tests of the same behaviour)."""

from __future__ import annotations

from tests.conftest import record

CHAIN_WITH_FAILURE = {
    "stages": {
        "bad": {"cmd": "exit 3", "outs": ["bad.txt"]},
        "after_bad": {"cmd": record("after_bad"), "deps": ["bad.txt"]},
        "good": {"cmd": f"sleep 0.3; {record('good')}"},
    }
}
