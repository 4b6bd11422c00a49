"""One recorded execution: plan, execute and record a run in an open session.

`repro` runs it in the workspace; `run` (experiments) in an isolated copy. Either way, the run
record is begun before the first stage, each stage is recorded as it ends, and the run ends
`succeeded`, `failed` or `interrupted` (a killed process leaves `running`, read back as
`interrupted`). A `repro` that finds everything up to date is no run: its record is dropped,
so `runs` and `compare` list only runs that did something.

Before anything runs, the stage process groups a killed `pipeline` left behind are killed
(`stagegroups.py`), and this run's groups are noted for the next run to do the same. The run
record is journaled as it goes, so a killed run is still recorded (`runs/journal.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.config import Config
from pipeline.core.lockfile import LockEntry
from pipeline.env.provision import Provisioner
from pipeline.errors import Interrupted, UsageError
from pipeline.execute.command import ProcessTracker
from pipeline.execute.daskexec import DaskBackend
from pipeline.execute.dispatch import JobBackend, JobRunner
from pipeline.execute.options import ExecOptions
from pipeline.execute.outputs import StageCache
from pipeline.execute.scheduler import (
    Events,
    Executor,
    FingerprintGate,
    Outcome,
    RunResult,
    StageResult,
    TrackTarget,
)
from pipeline.execute.stagegroups import GroupRegistry, kill_leftovers
from pipeline.execute.stagerows import StageRows
from pipeline.plan.decisions import Action, Plan
from pipeline.plan.session import Session
from pipeline.runs.model import Artifact, RunStatus
from pipeline.runs.record import RunInfo, RunRecorder, effective_params, read_metrics
from pipeline.runs.trackfile import run_track_dir
from pipeline.store.remoteruns import RemoteRunCache
from pipeline.store.runcache import RunCache

if TYPE_CHECKING:
    from pipeline.runs.runstore import RunStore


@dataclasses.dataclass(frozen=True, kw_only=True)
class Execution(ExecOptions):
    """How to execute (parallelism, failure policy) and the run record to write."""

    record: RunInfo | None = dataclasses.field(default_factory=RunInfo)
    store_dir: Path | None = None  # whose runs.db records it (default: the session's project)
    gate: FingerprintGate | None = None  # shared by a sweep's points
    after: Callable[[Executor], list[Artifact]] | None = None  # files to record with the run
    tracker: ProcessTracker | None = None  # shared by a sweep's points, to stop them all
    backend: JobBackend | None = None  # stages run as stage jobs there (None: here)


def execute(
    session: Session, plan: Plan, events: Events, how: Execution
) -> tuple[RunResult, Executor]:
    """Run `plan`, recording it unless `how.record` is None."""
    how = dataclasses.replace(how, backend=how.backend or backend_for(how, session.config))
    _open_backend(how.backend, plan)
    run_cache = _run_cache(session, plan)
    cache = StageCache(session.store, run_cache, session.hasher, session.config)
    state_dir = how.store_dir or session.project.state_dir
    kill_leftovers(state_dir)  # no stage of a killed run may still be writing
    quiet = how.record is not None and how.record.kind == "repro" and not plan.stale
    recorder = _recorder(state_dir, session, None if quiet else how.record)  # see `_no_op`
    rows = StageRows(session.project, session.store, session.run_cache)
    recorded: set[str] = set()
    tracker = _tracker(how.tracker, state_dir)

    def on_result(result: StageResult, entry: LockEntry | None) -> None:
        if recorder is not None:
            recorder.stage(rows.row(result, entry))
            recorded.add(result.stage)
            _track(recorder, executor, result, entry)

    executor = Executor(
        session.project,
        session.lock,
        session.hasher,
        events,
        options=how,
        cache=cache,
        envs=Provisioner(session.config.env),
        on_result=on_result,
        gate=how.gate,
        tracker=tracker,
        track=None
        if recorder is None
        else TrackTarget(recorder.id, run_track_dir(state_dir, recorder.id)),
        runner=_runner(session, cache, how.backend, tracker.cancelled),
    )
    if recorder is not None:
        recorder.begin(effective_params(session.project))
    try:
        result = executor.run(plan)
    except BaseException as exc:
        executor.tracker.stop_all()  # whatever path the interrupt took: no stage outlives us
        if recorder is not None:  # bounded: Ctrl-C ends the tool within seconds
            _track_stopped(recorder, executor, plan.order, recorded)
            _finish(recorder, session, ended_by(exc), set(), wait=_RECORD_WAIT_SECONDS)
        raise
    finally:
        run_cache.close()
        _close_backend(how.backend)
    if isinstance(run_cache, RemoteRunCache) and run_cache.error is not None:
        result = dataclasses.replace(result, remote_error=run_cache.error.message)
    if recorder is None:
        return result, executor
    if recorder.info.kind == "repro" and _no_op(result):
        _discard(recorder)
        return result, executor
    for late in result.results:  # settled without running: up to date, skipped
        if late.stage not in recorded:
            entry = executor.lock.stages.get(late.stage)
            recorder.stage(rows.row(late, entry))
            _track(recorder, executor, late, entry)
    if how.after is not None:
        recorder.files(how.after(executor))
    status = RunStatus.FAILED if result.failed else RunStatus.SUCCEEDED
    if how.tracker is not None and how.tracker.cancelled.is_set():
        status = RunStatus.INTERRUPTED  # a sweep being stopped: whatever ended, it did not succeed
    produced = {r.stage for r in result.results if r.outcome in _PRODUCED}
    error = _finish(recorder, session, status, produced)
    return dataclasses.replace(result, run_id=recorder.id, record_error=error), executor


def _track(
    recorder: RunRecorder, executor: Executor, result: StageResult, entry: LockEntry | None
) -> None:
    """Have the recorder store what the stage logged: its track file if it ran (or failed:
    a failed stage's points are kept), the producing run's values if it was restored or was
    up to date (a sweep point with the workspace's params shows the curve that made it)."""
    if result.outcome in (Outcome.RAN, Outcome.FAILED):
        recorder.track(result.stage, executor.track_file(result.stage))
    elif result.outcome in (Outcome.RESTORED, Outcome.UP_TO_DATE) and entry is not None:
        recorder.track(result.stage, None, restored_from=entry.fingerprint)


def _track_stopped(
    recorder: RunRecorder, executor: Executor, order: tuple[str, ...], recorded: set[str]
) -> None:
    """After an interrupt: the points of stages stopped mid-way are kept too."""
    for name in order:
        if name not in recorded and executor.track_file(name).exists():
            recorder.track(name, executor.track_file(name))


def _no_op(result: RunResult) -> bool:
    """A run that ran, restored, failed and skipped nothing: not worth a record of its own."""
    return all(r.outcome is Outcome.UP_TO_DATE for r in result.results)


def _discard(recorder: RunRecorder) -> None:
    # A record that cannot be dropped reads as one more run: harmless, never worth a failure.
    with contextlib.suppress(Exception):
        recorder.discard()


def _run_cache(session: Session, plan: Plan) -> RunCache:
    """The local run-cache, backed by the default remote's when one is configured."""
    if not plan.options.run_cache or not session.config.has_default_remote:
        return session.run_cache
    settings = session.config.remote()
    return RemoteRunCache(session.store, settings, session.project.root)


def _runner(
    session: Session, cache: StageCache, backend: JobBackend | None, stop: threading.Event
) -> JobRunner | None:
    """Stages leave this process through `backend`, their data through the default remote
    (or none: with `executor.shared_fs`, the workers see the project itself). `stop` is set
    when the run is being stopped (Ctrl-C, maybe on a sweep's other thread)."""
    if backend is None:
        return None
    config = session.config
    remote = None if config.executor.shared_fs else config.remote()
    return JobRunner(session.project, cache, remote, backend, stop)


def backend_for(how: ExecOptions, config: Config) -> JobBackend | None:
    """The cluster that `--executor`/`--scheduler` (or the config's `executor:`) names."""
    kind = how.executor or config.executor.kind
    if kind == "local":
        return None
    address = how.scheduler or config.executor.address
    if not address:
        raise UsageError(
            "the dask executor needs the scheduler's address",
            "give --scheduler tcp://HOST:8786, or set executor.address in .pipeline/config.yaml",
        )
    return DaskBackend(address, retries=config.executor.retries)


def _open_backend(backend: JobBackend | None, plan: Plan) -> None:
    """Connect when a stage may run: an unreachable cluster is one error before anything
    starts, and a run with nothing to do never connects."""
    if backend is not None and any(d.action in _MAY_RUN for d in plan.decisions.values()):
        backend.open()


def _close_backend(backend: JobBackend | None) -> None:
    if backend is not None:
        backend.close()


def _tracker(shared: ProcessTracker | None, state_dir: Path) -> ProcessTracker:
    """This run's tracker (or a sweep's shared one), noting its groups under `state_dir`."""
    tracker = shared or ProcessTracker()
    if tracker.groups is None:
        tracker.groups = GroupRegistry(state_dir)
    return tracker


def _recorder(state_dir: Path, session: Session, info: RunInfo | None) -> RunRecorder | None:
    if info is None:
        return None

    def open_store() -> RunStore:
        from pipeline.runs.runstore import RunStore  # noqa: PLC0415 - SQLAlchemy loads off-thread

        return RunStore.for_project(state_dir)

    return RunRecorder(open_store, session.project.root, info, journal_dir=state_dir)


_PRODUCED = (Outcome.RAN, Outcome.RESTORED, Outcome.UP_TO_DATE)
_MAY_RUN = (Action.RUN, Action.AFTER_UPSTREAM)
# After an interrupt, how long the record may take; the journal completes it if longer.
_RECORD_WAIT_SECONDS = 1.0


def ended_by(exc: BaseException) -> RunStatus:
    """`interrupted` for Ctrl-C and SIGTERM; any other exception is a failure."""
    interrupted = isinstance(exc, (KeyboardInterrupt, Interrupted))
    return RunStatus.INTERRUPTED if interrupted else RunStatus.FAILED


def _finish(
    recorder: RunRecorder,
    session: Session,
    status: RunStatus,
    stages: set[str],
    wait: float | None = None,
) -> str | None:
    """End the record; a failure to record is reported, never fatal to the run itself."""
    try:
        recorder.finish(status, read_metrics(session.project, stages), note="", wait=wait)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
