"""Where the UI reads from: the project's run store and cache, opened as the CLI opens them.

The store is opened the way `pipeline runs` opens it (`RunStore.for_project`: `runs.url` or
the SQLite file, a killed run's journal stored first, then values logged by dead runs and plain
scripts) and kept for the server's lifetime. Until there is a store, an empty in-memory one
answers and every request looks again, so the first run recorded while the UI is open shows up
without a restart. `cached` keeps a page's document until the store changes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from sqlalchemy import func, select

from pipeline.core.config import runs_url
from pipeline.errors import PipelineError
from pipeline.load.project import STATE_DIR, Project, load_project, project_root
from pipeline.runs import schema
from pipeline.runs.journal import pending
from pipeline.runs.runstore import DB_NAME, RunStore
from pipeline.runs.tracking import has_leftovers, ingest_leftovers
from pipeline.store.objects import ObjectStore

T = TypeVar("T")


@dataclass
class Source:
    """One project, as the UI's requests read it (shared by the server's threads)."""

    root: Path
    _store: RunStore | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cache_of: dict[str, tuple[object, object]] = field(default_factory=dict)
    _builders: dict[str, threading.Lock] = field(default_factory=dict)

    @classmethod
    def at(cls, start: Path | str) -> Source:
        return cls(project_root(start))

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @contextlib.contextmanager
    def store(self) -> Iterator[RunStore]:
        """The run store: the project's, once it exists, else an empty one for this request."""
        with self._lock:
            if self._store is None and self._exists():
                self._store = RunStore.for_project(self.state_dir)
                # what a dead run or a plain script logged, as the reading commands do
                ingest_leftovers(self._store, self.state_dir, self.root)
        if self._store is not None:
            yield self._store
            return
        empty = RunStore("sqlite://")
        try:
            yield empty
        finally:
            empty.close()

    def _exists(self) -> bool:
        """Whether there is a store to open: a server's (`runs.url`), or the SQLite file (or
        what must go into it: a killed run's journal, values logged by a finished script)."""
        state = self.state_dir
        if runs_url(state) is not None or (state / DB_NAME).is_file():
            return True
        return pending(state) or has_leftovers(state)

    def stamp(self) -> tuple[object, ...] | None:
        """What changes whenever the store does: its SQLite files' size and time (a commit
        touches the write-ahead log), or, for another database, a count and sum of the runs,
        params and metrics tables. None: no store yet."""
        files = [self.state_dir / DB_NAME, self.state_dir / f"{DB_NAME}-wal"]
        with self.store() as store:
            if store.path is None and self._store is None:
                return None
            if store.path is not None:
                stats = [p.stat() if p.exists() else None for p in files]
                return tuple((s.st_mtime_ns, s.st_size) if s else None for s in stats)
            return _counts(store)

    def project(self) -> Project:
        """The project as `pipeline dag` loads it (a broken manifest: its `ManifestError`)."""
        return load_project(self.root)

    def name(self) -> str:
        """The project's name (its manifest's `name`), else its folder's."""
        try:
            return self.project().name or self.root.name
        except PipelineError:
            return self.root.name

    def read(self, digest: str) -> bytes | None:
        """An object's bytes from the project's cache, or None when it is not there."""
        try:
            return self._cache().path(digest).read_bytes()
        except (OSError, PipelineError):  # gone, unreadable, or not a hash at all
            return None

    def present(self, digest: str) -> bool:
        """Whether the cache holds an object: one `stat`, never a hash."""
        try:
            return self._cache().has(digest)
        except PipelineError:
            return False

    def _cache(self) -> ObjectStore:
        return ObjectStore(self.state_dir / "cache")  # never created by reading

    def cached(self, name: str, build: Callable[[], T]) -> T:
        """`build()`, or its result from the last call while the store has not changed.

        The runs table of 10,000 runs takes a second to query; reloading the page should not.
        One build at a time per name: a request during the server's warm-up waits for it.
        (Runs that lose cache objects to `gc` are marked on the next change of the store.)
        """
        with self._lock:
            building = self._builders.setdefault(name, threading.Lock())
        with building:
            stamp = self.stamp()
            hit = self._cache_of.get(name)
            if hit is not None and stamp is not None and hit[0] == stamp:
                return cast(T, hit[1])
            value = build()
            self._cache_of[name] = (stamp, value)
            return value

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def _counts(store: RunStore) -> tuple[object, ...]:
    """A cheap summary of the runs, params and metrics tables that changes when they do."""
    runs = schema.runs
    with store.engine.connect() as conn:
        found = conn.execute(
            select(func.count(), func.max(runs.c.started_at), func.sum(runs.c.ended_at))
        ).one()
        counts = [
            conn.execute(select(func.count()).select_from(t)).scalar()
            for t in (schema.params, schema.metrics)
        ]
    return (*found, *counts)
