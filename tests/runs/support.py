"""Helpers shared by the run store tests; this module holds no tests."""

from __future__ import annotations

import socket
from typing import Any

from pipeline.runs.runstore import RunRow


def _row(run_id: str, started: float, **fields: Any) -> RunRow:
    values: dict[str, Any] = {
        "kind": "repro",
        "command": "pipeline repro",
        "status": "succeeded",
        "host": socket.gethostname(),
        "pid": None,
    }
    values.update(fields)
    return RunRow(id=run_id, started_at=started, **values)
