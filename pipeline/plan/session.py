"""One command's view of a project: the loaded manifest, the lock, the hasher, the cache.

`open_session` keeps the stat memo (`state.db`) open for the duration and closes it after,
and refuses a cache whose objects directory is blocked by a file (one line, not a failure later).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.config import Config, load_config
from pipeline.core.hashing import Hasher
from pipeline.core.lockfile import Lock, read_lock
from pipeline.core.paths import check_state_dir
from pipeline.core.statmemo import StatMemo
from pipeline.core.syserrors import blocked_directory
from pipeline.load.project import STATE_DIR, Project, load_project, project_root
from pipeline.store.objects import ObjectStore
from pipeline.store.runcache import RunCache


@dataclass(frozen=True)
class Session:
    """A loaded project with its lock and a memoising hasher, valid inside `open_session`."""

    project: Project
    lock: Lock
    hasher: Hasher
    config: Config
    store: ObjectStore

    @property
    def run_cache(self) -> RunCache:
        return RunCache(self.store)


@contextlib.contextmanager
def open_session(root: Path | str = ".") -> Iterator[Session]:
    """Load the project at `root` and keep the stat memo open until the block ends."""
    top = project_root(root)  # the repository, not the folder of the nearest manifest
    state_dir = top / STATE_DIR
    check_state_dir(top, state_dir)  # before anything in it is opened
    state = StatMemo(state_dir / "state.db")
    try:
        project = load_project(root, memo=state)
        lock = read_lock(project.root, memo=state)
        config = load_config(state_dir, memo=state)
        store = _usable(ObjectStore(state_dir / "cache"))
        yield Session(project, lock, Hasher(project.root, state), config, store)
    finally:
        state.close()


def _usable(store: ObjectStore) -> ObjectStore:
    """`store`, unless a file stands where its objects go: then every command says so at once
    (a missing directory is fine: it is created when first written)."""
    blocked = blocked_directory(store.objects)
    if blocked is not None:
        raise blocked
    return store
