"""A run's record as it happens, in a cheap append-only file, until the run store holds it.

The run store is written on a background thread that first imports SQLAlchemy, so a `repro`
killed early could leave stages in the lock and no run at all. Each record line is therefore
also appended, synchronously, to `.pipeline/tmp/journal/<run id>.jsonl` (a few microseconds, no
import): the run before its first stage, each stage as it commits, the final status. A finished
run deletes its journal; the journal of a dead process is replayed into the store by the next
command that opens it (`runs/ingest.py`), which records the run as interrupted unless the
journal says how it ended. Reading this file needs no SQLAlchemy either.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.atomic import atomic_write_text
from pipeline.runs.liveness import ProcessId, this_process
from pipeline.runs.model import Artifact, RunRow, RunStatus, StageRow

JOURNAL_DIR = Path("tmp") / "journal"  # below the state directory (`.pipeline`)


class Journal:
    """The journal of one run; every write is one `write` call of whole lines."""

    def __init__(self, state_dir: Path, run_id: str) -> None:
        self.path = state_dir / JOURNAL_DIR / f"{run_id}.jsonl"
        self._fd: int | None = None

    def begin(self, run: RunRow, params: Mapping[str, Any]) -> None:
        """Create the journal with its owner and the run; a failure only loses the safety net.

        Both lines are in place before the journal appears (atomic rename), so no reader sees
        a journal without its owner.
        """
        owner = _line({"owner": this_process().to_json()})
        head = owner + _line({"run": run.to_json(), "params": dict(params)})
        try:
            atomic_write_text(self.path, head, durable=False)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError:
            return

    def stage(self, row: StageRow) -> None:
        self._append({"stage": row.to_json()})

    def files(self, artifacts: list[Artifact]) -> None:
        self._append({"files": [a.__dict__ for a in artifacts]})

    def finish(
        self, status: RunStatus, ended: float, metrics: Mapping[str, Any], note: str
    ) -> None:
        end = {"status": status.value, "ended": ended, "metrics": dict(metrics), "note": note}
        self._append({"finish": end})

    def close(self, *, remove: bool) -> None:
        """Stop writing; `remove` once the run store holds everything written here."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if remove:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _append(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            return
        try:
            # One call: a SIGKILL cannot leave half a line.
            os.write(self._fd, _line(record).encode())
        except OSError:  # a full disk: the run store still gets the record
            self.close(remove=False)


@dataclass(frozen=True)
class Replay:
    """What a dead run's journal holds, ready to write into the run store."""

    path: Path
    run: RunRow
    params: dict[str, Any]
    stages: tuple[StageRow, ...]
    files: tuple[Artifact, ...]
    finish: dict[str, Any] | None


def orphans(state_dir: Path) -> Iterator[Path]:
    """Journals whose writer is gone (a live run's journal is its own business)."""
    try:
        paths = sorted((state_dir / JOURNAL_DIR).glob("*.jsonl"))
    except OSError:
        return
    for path in paths:
        owner = _owner(path)
        if owner is None or not owner.alive():
            yield path


def pending(state_dir: Path) -> bool:
    """Whether a dead run's journal waits to be stored (then even a reader opens the store)."""
    return next(orphans(state_dir), None) is not None


def read_journal(path: Path) -> Replay | None:
    """The journal's records; None if it never got as far as the run (nothing to record)."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return None
    found: dict[str, Any] = {"stages": [], "files": [], "finish": None, "run": None}
    for line in lines:
        with contextlib.suppress(TypeError, ValueError, KeyError):  # a garbled line: skipped
            _take(found, _parse(line))
    if found["run"] is None:
        return None
    return Replay(
        path,
        found["run"],
        found["params"],
        tuple(found["stages"]),
        tuple(found["files"]),
        found["finish"],
    )


def _take(found: dict[str, Any], record: dict[str, Any]) -> None:
    if "run" in record:
        found["run"], found["params"] = RunRow(**record["run"]), record.get("params") or {}
    elif "stage" in record:
        found["stages"].append(StageRow.from_json(record["stage"]))
    elif "files" in record:
        found["files"].extend(Artifact(**a) for a in record["files"])
    elif "finish" in record:
        found["finish"] = dict(record["finish"])


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, default=str) + "\n"


def _owner(path: Path) -> ProcessId | None:
    try:
        with open(path, "rb") as fh:
            first = _parse(fh.readline())
        return ProcessId.from_json(first["owner"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _parse(line: bytes) -> dict[str, Any]:
    """One record; a line cut short (a full disk) or garbled reads as nothing."""
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}
