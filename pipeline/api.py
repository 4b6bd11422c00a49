"""The Python API: everything the CLI does, callable as `pipeline.repro(...)` and friends.

Each call is load → plan → execute → record in one direction; the CLI only parses options into
`ReproOptions` and renders what these functions return.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.command import sigterm_as_interrupt
from pipeline.errors import Interrupted
from pipeline.execute import Events, Executor, QuietEvents, RunResult
from pipeline.hashing import Hasher
from pipeline.lockfile import Lock, read_lock
from pipeline.plan import Plan, PlanOptions, make_plan
from pipeline.project import STATE_DIR, Project, find_manifest, load_project
from pipeline.state import StateDB


@dataclass(frozen=True)
class ReproOptions:
    """Options shared by `status`, `plan` and `repro`."""

    root: Path | str = "."
    targets: tuple[str, ...] = ()
    force: bool = False


@dataclass(frozen=True)
class Session:
    """A loaded project with its lock and a memoising hasher, valid inside `open_session`."""

    project: Project
    lock: Lock
    hasher: Hasher


@contextlib.contextmanager
def open_session(root: Path | str = ".") -> Iterator[Session]:
    """Load the project at `root` and keep the stat memo open until the block ends."""
    manifest = find_manifest(Path(root))
    state = StateDB(manifest.parent / STATE_DIR / "state.db")
    try:
        project = load_project(manifest, memo=state)
        lock = read_lock(project.root, memo=state)
        yield Session(project, lock, Hasher(project.root, state))
    finally:
        state.close()


def plan(options: ReproOptions | None = None) -> Plan:
    """What `repro` would do and why, without running anything (`status`, `repro --dry`)."""
    options = options or ReproOptions()
    with open_session(options.root) as session:
        return _plan(session, options)


status = plan


def repro(options: ReproOptions | None = None, events: Events | None = None) -> RunResult:
    """Bring the workspace up to date: run every stale selected stage, upstream first."""
    options = options or ReproOptions()
    with sigterm_as_interrupt(), open_session(options.root) as session:
        executor = Executor(session.project, session.lock, session.hasher, events or QuietEvents())
        try:
            return executor.run(_plan(session, options))
        except KeyboardInterrupt:
            raise Interrupted(
                "interrupted; the lock keeps every stage that finished",
                "run `pipeline repro` again to continue",
            ) from None


def _plan(session: Session, options: ReproOptions) -> Plan:
    plan_options = PlanOptions(targets=options.targets, force=options.force)
    return make_plan(session.project, session.lock, session.hasher, plan_options)
