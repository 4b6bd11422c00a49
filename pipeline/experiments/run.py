"""`pipeline run`: experiments in isolated workspaces, one recorded run per point of a sweep.

Every point gets its own workspace (`isolate.py`) with its overrides written into the params
files, is planned and executed there, and is recorded in the project's run store with its
params files and lock stored as objects (so `checkout RUN` can bring it back). Points run in
parallel up to `jobs`; a `FingerprintGate` makes a stage that several points share run once,
the others restoring its outputs from the run-cache. The user's workspace is never written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.core.hashing import digest_bytes, file_digest
from pipeline.core.lockfile import LOCK_NAME, LockWriter
from pipeline.core.options import values_of
from pipeline.core.waiting import wait_all
from pipeline.data.checkout import checkout
from pipeline.errors import PipelineError
from pipeline.execute.command import ProcessTracker
from pipeline.execute.options import ExecOptions
from pipeline.execute.orchestrate import Execution, execute
from pipeline.execute.scheduler import (
    Events,
    Executor,
    FingerprintGate,
    QuietEvents,
    RunResult,
)
from pipeline.experiments.isolate import (
    isolated_session,
    make_workspace,
    remove_workspace,
    workspace_dir,
)
from pipeline.experiments.options import RunOptions
from pipeline.experiments.overrides import Point, apply, points
from pipeline.load.project import Project
from pipeline.plan.decisions import make_plan
from pipeline.plan.selection import select
from pipeline.plan.session import Session, open_session
from pipeline.runs.model import Artifact, RunStatus
from pipeline.runs.record import RunInfo, RunRecorder, new_run_id
from pipeline.runs.workspaces import clear_dead, leased

if TYPE_CHECKING:
    from pipeline.runs.runstore import RunStore


@dataclass(frozen=True)
class PointResult:
    """One point's run: its record id, and what happened (or why it could not start)."""

    point: Point
    run_id: str
    result: RunResult | None = None
    error: PipelineError | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.result is not None and self.result.failed is None


@dataclass(frozen=True)
class Experiment:
    """All points of one `pipeline run`, and the sweep record grouping them (if several)."""

    points: tuple[PointResult, ...]
    parent_id: str | None = None


EventsFor = Callable[[Point, int], Events]


def run_experiments(options: RunOptions, events_for: EventsFor | None = None) -> Experiment:
    """Validate every override first (exit 2 before anything runs), then run the points."""
    with open_session(options.root) as session:
        grid = points(session.project, options.params, options.sweeps)
        if options.targets:  # unknown targets are reported now, before any workspace exists
            select(session.project, options.targets)
        state_dir = session.project.state_dir
        clear_dead(state_dir)  # workspaces that killed experiments left behind
        with leased(state_dir, f"experiment-{new_run_id()}"):  # gc keeps what we write
            return _experiment(session, grid, options, events_for)


def _experiment(
    session: Session, grid: list[Point], options: RunOptions, events_for: EventsFor | None
) -> Experiment:
    """The points, under a sweep record when there are several."""
    parent = _parent(session, options) if len(grid) > 1 else None
    shared = Shared(parent.id if parent else None, FingerprintGate(), ProcessTracker())
    results = _run_points(
        session, grid, options, shared, events_for=events_for or _quiet, parent=parent
    )
    if parent is not None:
        status = RunStatus.SUCCEEDED if all(r.succeeded for r in results) else RunStatus.FAILED
        parent.finish(status, {})
    return Experiment(results, parent.id if parent else None)


def _run_points(
    session: Session,
    grid: list[Point],
    options: RunOptions,
    shared: Shared,
    *,
    events_for: EventsFor,
    parent: RunRecorder | None,
) -> tuple[PointResult, ...]:
    """Every point on a thread pool; an interrupt stops every command before waiting."""
    width = max(1, min(options.jobs, len(grid)))
    each = dataclasses.replace(options, jobs=max(1, options.jobs // width))
    pool = ThreadPoolExecutor(width, thread_name_prefix="point")
    futures = [
        pool.submit(_run_point, session, p, each, shared, events_for(p, len(grid))) for p in grid
    ]
    try:
        wait_all(futures)
        results = tuple(f.result() for f in futures)
    except BaseException:
        shared.tracker.stop_all()  # running points fail fast and record `interrupted`
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)
        if parent is not None:
            parent.finish(RunStatus.INTERRUPTED, {})
        raise
    pool.shutdown()
    return results


@dataclass(frozen=True)
class Shared:
    """What the points of one experiment share."""

    parent_id: str | None
    gate: FingerprintGate
    tracker: ProcessTracker


def _quiet(point: Point, count: int) -> Events:
    return QuietEvents()


def _parent(session: Session, options: RunOptions) -> RunRecorder:
    def open_store() -> RunStore:
        from pipeline.runs.runstore import RunStore  # noqa: PLC0415 - SQLAlchemy loads off-thread

        return RunStore.for_project(session.project.state_dir)

    info = RunInfo(kind="sweep", name=options.name, command=options.command)
    recorder = RunRecorder(
        open_store, session.project.root, info, journal_dir=session.project.state_dir
    )
    recorder.begin({})
    return recorder


def _run_point(
    session: Session, point: Point, options: RunOptions, shared: Shared, events: Events
) -> PointResult:
    run_id = new_run_id()
    with leased(session.project.state_dir, run_id):  # before the workspace, and outliving it
        return _run_isolated(session, point, options, shared, events, run_id=run_id)


def _run_isolated(
    session: Session,
    point: Point,
    options: RunOptions,
    shared: Shared,
    events: Events,
    *,
    run_id: str,
) -> PointResult:
    root = workspace_dir(session.project, run_id)
    try:
        make_workspace(session.project, session.lock, run_id)
        changed = apply(root, point.overrides)
        with isolated_session(session, root) as isolated:
            checkout(isolated, ())
            plan = make_plan(isolated, options)
            name = point.name if options.name is None else _named(options.name, point)
            how = Execution(
                **values_of(ExecOptions, options),
                record=RunInfo("run", name, shared.parent_id, options.command, run_id),
                store_dir=session.project.state_dir,
                gate=shared.gate,
                after=lambda executor: _keep_files(isolated, executor, changed),
                tracker=shared.tracker,
            )
            result, _ = execute(isolated, plan, events, how)
            return PointResult(point, run_id, result)
    except PipelineError as exc:
        return PointResult(point, run_id, error=exc)
    finally:
        remove_workspace(root)


def _named(name: str, point: Point) -> str:
    return f"{name}:{point.name}" if point.name else name


def _keep_files(session: Session, executor: Executor, changed: list[str]) -> list[Artifact]:
    """Store the run's params files and its lock as objects, for `checkout RUN`."""
    project: Project = session.project
    files = sorted({*project.params_files, *changed, *_params_files_used(project)})
    kept = []
    for relpath in files:
        path = project.root / relpath
        if path.is_file():
            digest = file_digest(path)
            session.store.put_file(str(path), digest, ["copy"])
            _renew(session, digest)
            kept.append(Artifact(relpath, digest, os.path.getsize(path), 1))
    lock_text = LockWriter.render_once(executor.lock).encode()
    digest = digest_bytes(lock_text)
    session.store.put_bytes(lock_text, digest)
    _renew(session, digest)
    kept.append(Artifact(LOCK_NAME, digest, len(lock_text), 1))
    return kept


def _renew(session: Session, digest: str) -> None:
    """An object that was already stored gets a new time: a `gc` running now keeps what is
    newer than our lease, and this object is ours until the run record names it."""
    with contextlib.suppress(OSError):
        os.utime(session.store.path(digest))


def _params_files_used(project: Project) -> set[str]:
    return {file for stage in project.stages.values() for file in stage.params}
