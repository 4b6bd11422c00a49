"""What this machine knows a remote holds, so that no-op pushes and pulls never list it.

`.pipeline/remotes.db` (SQLite) remembers, per remote, every object seen there (uploaded,
downloaded, or found by a lookup) and where it lies: its own file, or a member of a pack
(`packs`: pack id, offset, size). Everything is tied to the remote's generation: `gc --remote`
renews it, and a client that sees a new generation forgets what it knew. The index only ever
says "present"; an object it does not list is looked up on the remote.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    remote TEXT PRIMARY KEY, generation TEXT, checked REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS known (
    remote TEXT NOT NULL, digest TEXT NOT NULL, pack TEXT NOT NULL DEFAULT '',
    offset INTEGER NOT NULL DEFAULT 0, size INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (remote, digest)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS packs (
    remote TEXT NOT NULL, pack TEXT NOT NULL, PRIMARY KEY (remote, pack)
) WITHOUT ROWID;
"""
_BATCH = 500  # digests per query: well below SQLite's limit on bound parameters


def _connect(path: Path | str) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        # only a cache: a crash may lose the last entries (then they are looked up again)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db


@dataclass(frozen=True)
class Location:
    """Where an object lies on a remote: its own file (`pack` empty), or inside a pack."""

    pack: str = ""
    offset: int = 0
    size: int = 0


class KnownIndex:
    """The known-objects index of one project, for any number of remotes.

    Once closed it is empty and forgets what it is told: a transfer thread still finishing
    after an error or Ctrl-C finds nothing and writes nothing. No connection is left for the
    garbage collector to close: SQLite's close releases the GIL, and a collection that runs
    inside `sys._current_frames()` (Dask's worker profiler calls it every 10 ms) then
    deadlocks CPython 3.11 (the thread-list lock is held across the release).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None
        try:
            self._db = _connect(path)
        except sqlite3.DatabaseError:  # damaged: it is only a cache
            path.unlink(missing_ok=True)
            self._db = _connect(path)

    def close(self) -> None:
        """Close the file, now, on this thread."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def adopt(self, remote: str, generation: str | None) -> None:
        """Make `generation` current for `remote` (just read from it); a different one than
        known empties the index."""
        with self._lock:
            if self._db is None:
                return
            row = self._db.execute(
                "SELECT generation FROM generations WHERE remote = ?", (remote,)
            ).fetchone()
            self._db.execute("BEGIN")
            if row is None or row[0] != generation:
                self._db.execute("DELETE FROM known WHERE remote = ?", (remote,))
                self._db.execute("DELETE FROM packs WHERE remote = ?", (remote,))
            self._db.execute(
                "INSERT OR REPLACE INTO generations (remote, generation, checked) VALUES (?, ?, ?)",
                (remote, generation, time.time()),
            )
            self._db.execute("COMMIT")

    def checked_within(self, remote: str, seconds: float) -> bool:
        """Whether the remote's generation was read less than `seconds` ago (and it had one)."""
        with self._lock:
            if self._db is None:
                return False
            row = self._db.execute(
                "SELECT checked FROM generations WHERE remote = ? AND generation IS NOT NULL",
                (remote,),
            ).fetchone()
        return row is not None and 0 <= time.time() - row[0] < seconds

    def lookup(self, remote: str, digests: Iterable[str]) -> dict[str, Location]:
        """The known location of each of `digests` that the index lists."""
        found: dict[str, Location] = {}
        wanted = list(digests)
        with self._lock:
            db = self._db
            if db is None:
                return found
            for start in range(0, len(wanted), _BATCH):
                batch = wanted[start : start + _BATCH]
                marks = ",".join("?" * len(batch))
                rows = db.execute(
                    "SELECT digest, pack, offset, size FROM known "
                    f"WHERE remote = ? AND digest IN ({marks})",
                    (remote, *batch),
                )
                found.update({d: Location(p, o, s) for d, p, o, s in rows})
        return found

    def add(self, remote: str, objects: dict[str, Location]) -> None:
        rows = [(remote, d, loc.pack, loc.offset, loc.size) for d, loc in objects.items()]
        with self._lock:
            if self._db is None:
                return
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO known (remote, digest, pack, offset, size) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")

    def packs(self, remote: str) -> set[str]:
        """The packs whose members the index already lists."""
        with self._lock:
            if self._db is None:
                return set()
            rows = self._db.execute("SELECT pack FROM packs WHERE remote = ?", (remote,))
            return {r[0] for r in rows}

    def add_pack(self, remote: str, pack: str, members: dict[str, Location]) -> None:
        self.add(remote, members)
        with self._lock:
            if self._db is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO packs (remote, pack) VALUES (?, ?)", (remote, pack)
                )
