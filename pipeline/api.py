"""The Python API: everything the CLI does, callable as `pipeline.repro(...)` and friends.

Each call is load → plan → execute → record in one direction; the CLI only parses options into
`ReproOptions` and renders what these functions return.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cache import ObjectStore
from pipeline.config import Config, load_config
from pipeline.errors import Interrupted
from pipeline.hashing import Hasher
from pipeline.lockfile import Lock, read_lock
from pipeline.plan import Plan, PlanOptions, make_plan
from pipeline.project import STATE_DIR, Project, find_manifest, load_project
from pipeline.runcache import RunCache
from pipeline.state import StateDB

if TYPE_CHECKING:
    from pipeline.execute import Events, RunResult


@dataclass(frozen=True)
class ReproOptions:
    """Options shared by `status`, `plan` and `repro` (see `pipeline repro --help`)."""

    root: Path | str = "."
    targets: tuple[str, ...] = ()
    force: bool = False
    single_item: bool = False
    downstream: bool = False
    force_downstream: bool = False
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    keep_going: bool = False
    wait: bool = True
    run_cache: bool = True  # restore stages whose exact inputs ran before

    def plan_options(self) -> PlanOptions:
        return PlanOptions(
            targets=self.targets,
            force=self.force,
            single_item=self.single_item,
            downstream=self.downstream,
            force_downstream=self.force_downstream,
            run_cache=self.run_cache,
        )


@dataclass(frozen=True)
class Session:
    """A loaded project with its lock and a memoising hasher, valid inside `open_session`."""

    project: Project
    lock: Lock
    hasher: Hasher
    config: Config
    store: ObjectStore

    @property
    def runs(self) -> RunCache:
        return RunCache(self.store)


@contextlib.contextmanager
def open_session(root: Path | str = ".") -> Iterator[Session]:
    """Load the project at `root` and keep the stat memo open until the block ends."""
    manifest = find_manifest(Path(root))
    state_dir = manifest.parent / STATE_DIR
    state = StateDB(state_dir / "state.db")
    try:
        project = load_project(manifest, memo=state)
        lock = read_lock(project.root, memo=state)
        config = load_config(state_dir, memo=state)
        store = ObjectStore(state_dir / "cache")
        yield Session(project, lock, Hasher(project.root, state), config, store)
    finally:
        state.close()


def plan(options: ReproOptions | None = None) -> Plan:
    """What `repro` would do and why, without running anything (`status`, `repro --dry`)."""
    options = options or ReproOptions()
    with open_session(options.root) as session:
        return _plan(session, options)


status = plan


def repro(
    options: ReproOptions | None = None,
    events: Events | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> RunResult:
    """Bring the workspace up to date: run every stale selected stage, upstream first.

    Only one `repro` runs per project at a time; `on_wait` hears about the one we wait for.
    """
    # Imported here so that `status` never pays for the executor, threads and file locks.
    from pipeline.command import sigterm_as_interrupt  # noqa: PLC0415
    from pipeline.execute import ExecOptions, Executor, QuietEvents  # noqa: PLC0415
    from pipeline.projectlock import project_lock  # noqa: PLC0415
    from pipeline.stagecache import StageCache  # noqa: PLC0415

    options = options or ReproOptions()
    state_dir = find_manifest(Path(options.root)).parent / STATE_DIR
    try:
        with (
            sigterm_as_interrupt(),
            project_lock(state_dir, wait=options.wait, on_wait=on_wait),
            open_session(options.root) as session,
        ):
            cache = StageCache(
                session.store, session.runs, session.hasher, session.config, options.run_cache
            )
            executor = Executor(
                session.project,
                session.lock,
                session.hasher,
                events or QuietEvents(),
                options=ExecOptions(jobs=options.jobs, keep_going=options.keep_going),
                cache=cache,
            )
            return executor.run(_plan(session, options))
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted; the lock keeps every stage that finished",
            "run `pipeline repro` again to continue",
        ) from None


def _plan(session: Session, options: ReproOptions) -> Plan:
    return make_plan(
        session.project, session.lock, session.hasher, options.plan_options(), session.runs
    )
