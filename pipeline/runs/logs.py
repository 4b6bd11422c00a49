"""A recorded stage's log, read back from the cache: `runs log`, and the tails of failures.

A stage's log is an object in the cache; its stage row names it (`log_hash`). A sweep has no
stages of its own: its logs are those of its points. Reading the cache is the caller's: `read`
returns an object's bytes, or None when the object is gone (removed by `gc`, never pulled).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.core.suggest import suggest_name
from pipeline.errors import UsageError
from pipeline.runs.model import RunDetail, RunRow, StageRow
from pipeline.runs.runstore import RunStore

TAIL_LINES = 20  # what `runs show` and a sweep's report show of a failed stage's log

Read = Callable[[str], bytes | None]


@dataclass(frozen=True)
class StageLog:
    """One stage run's log; `data` is None when the object is gone from the cache."""

    run: RunRow
    stage: StageRow
    data: bytes | None

    def tail(self, lines: int = TAIL_LINES) -> list[str]:
        """The last `lines` lines, as a terminal would have shown them (`\\r` redraws)."""
        text = (self.data or b"").decode("utf-8", errors="replace")
        shown = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
        return shown[-lines:] if lines > 0 else []


def with_points(store: RunStore, ref: str) -> list[RunDetail]:
    """The run `ref`, followed by its points when it is a sweep."""
    detail = store.detail(ref)
    return [detail, *(store.detail(child.id) for child in detail.children)]


def stage_logs(details: Sequence[RunDetail], stage: str | None, read: Read) -> list[StageLog]:
    """The logs of `stage` (every stage with a log when None) in these runs.

    A stage the runs do not have, or one that left no log (up to date, skipped), is a usage
    error that says which stages do have one.
    """
    rows = [(d.run, s) for d in details for s in d.stages if stage in (None, s.stage)]
    logged = [(run, row) for run, row in rows if row.log_hash]
    if not logged:
        raise _no_log(details, stage, bool(rows))
    return [StageLog(run, row, read(row.log_hash or "")) for run, row in logged]


def failed_logs(details: Sequence[RunDetail], read: Read) -> list[StageLog]:
    """The failed stages of these runs, with their logs (None if not recorded or gone)."""
    failed = [(d.run, s) for d in details for s in d.stages if s.outcome == "failed"]
    return [StageLog(run, row, read(row.log_hash) if row.log_hash else None) for run, row in failed]


def _no_log(details: Sequence[RunDetail], stage: str | None, known: bool) -> UsageError:
    run = details[0].run.id
    with_log = sorted({s.stage for d in details for s in d.stages if s.log_hash})
    some = f"stages with a log: {', '.join(with_log)}" if with_log else "no stage has a log"
    if stage is None:
        return UsageError(f"run {run} recorded no log: no stage of it ran", some)
    if known:
        return UsageError(
            f"stage {stage} of run {run} has no log: it did not run (up to date or skipped)", some
        )
    names = sorted({s.stage for d in details for s in d.stages})
    return UsageError(f"run {run} has no stage {stage!r}", suggest_name(stage, names, some))
