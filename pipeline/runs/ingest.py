"""Replaying the journals of dead runs into the run store (see `runs/journal.py`).

Called whenever a command opens the project's run store, so `pipeline runs` right after a
killed `repro` already lists it, as interrupted and with the stages that committed. Replay is
idempotent: whatever the dead run's writer thread got into the store is dropped and the whole
journal written in its place, and the journal is deleted only after that commit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock
from sqlalchemy.exc import SQLAlchemyError

from pipeline.errors import PipelineError
from pipeline.runs.journal import JOURNAL_DIR, Replay, orphans, read_journal
from pipeline.runs.model import Artifact, RunRow, RunStatus, StageRow


class _Writer(Protocol):
    def start(self, run: RunRow, params: Mapping[str, Any]) -> None: ...
    def record_stage(self, run_id: str, stage: StageRow) -> None: ...
    def record_files(self, run_id: str, files: Sequence[Artifact]) -> None: ...
    def finish(
        self,
        run_id: str,
        status: RunStatus,
        ended_at: float,
        metrics: Mapping[str, Any],
        note: str = "",
    ) -> None: ...


class _Store(Protocol):
    """The part of `RunStore` replay uses (it cannot import it: the store calls us)."""

    def drop(self, run_ids: Sequence[str]) -> None: ...
    def batch(self) -> AbstractContextManager[_Writer]: ...


def ingest_journals(store: _Store, state_dir: Path) -> int:
    """Replay every dead run's journal into `store`; how many were. Never fails the caller.

    A failure (a read-only or full disk, a damaged store) leaves the journal for the next try.
    """
    paths = list(orphans(state_dir))
    if not paths:
        return 0
    done = 0
    # One replayer at a time: two would drop and insert the same run twice.
    with (
        contextlib.suppress(OSError, ValueError, TypeError, PipelineError, SQLAlchemyError),
        FileLock(str(state_dir / JOURNAL_DIR / ".ingest.lock")),
    ):
        for path in _still_there(paths):
            replay = read_journal(path)
            if replay is not None:
                _replay(store, replay)
            path.unlink()
            done += 1
    return done


def _still_there(paths: list[Path]) -> Iterator[Path]:
    """Journals another replayer has not finished while we waited for the lock."""
    return (p for p in paths if p.exists())


def _replay(store: _Store, replay: Replay) -> None:
    run_id = replay.run.id
    end = replay.finish or {
        "status": RunStatus.INTERRUPTED.value,
        "ended": _mtime(replay.path),
        "note": "the pipeline process died; recorded from its journal",
    }
    store.drop([run_id])
    with store.batch() as writer:
        writer.start(replay.run, replay.params)
        for stage in replay.stages:
            writer.record_stage(run_id, stage)
        if replay.files:
            writer.record_files(run_id, list(replay.files))
        status, ended = RunStatus(end["status"]), float(end["ended"])
        writer.finish(run_id, status, ended, end.get("metrics") or {}, end.get("note") or "")


def _mtime(path: Path) -> float:
    """When the dead run last wrote: as close to its end as we can know."""
    return os.stat(path).st_mtime
