"""The stat memo: `.pipeline/state.db` maps (path, inode, mtime_ns, size) to a content hash.

It is what makes a no-op `status` stat files instead of reading them. An entry is trusted only if
the file's mtime is safely older than the moment it was hashed: a file rewritten within the same
timestamp tick as its hashing ("racily clean", as git calls it) would otherwise keep a stale hash.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from pipeline.core.paths import ancestors

# Larger than any Linux filesystem's timestamp granularity (ext4/xfs tick at most every 10 ms).
RACY_MARGIN_NS = 100_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY,
    inode INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    hash TEXT NOT NULL,
    hashed_at_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS documents (
    path TEXT PRIMARY KEY,
    inode INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    json TEXT NOT NULL,
    parsed_at_ns INTEGER NOT NULL
) WITHOUT ROWID;
"""


_COLUMNS = {
    "hashes": "inode, mtime_ns, size, hash, hashed_at_ns",
    "documents": "inode, mtime_ns, size, json, parsed_at_ns",
}


P = ParamSpec("P")
R = TypeVar("R")


def _locked(method: Callable[P, R]) -> Callable[P, R]:
    """Serialise a StatMemo method (one connection, one thread at a time) and heal corruption.

    A memo is only a cache: when sqlite finds the file damaged (anything but a busy or locked
    database), it is set aside as `state.db.corrupt` and the call is retried on a fresh one.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        db = cast(StatMemo, args[0])
        with db._lock:
            try:
                return method(*args, **kwargs)
            except sqlite3.OperationalError:
                raise
            except sqlite3.DatabaseError:
                db._set_aside()
                return method(*args, **kwargs)

    return wrapper


class StatMemo:
    """A small sqlite-backed memo. Writes are batched and committed by `flush()` or `close()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[str, int, int, int, str, int]] = []
        self._prefetched: dict[str, tuple[Any, ...]] = {}
        self._prefetched_dirs: set[str] = set()
        # One connection shared by the worker threads of a parallel run, used one at a time.
        self._lock = threading.RLock()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            init_state_dir(self.path.parent)
            self._conn = _open(self.path)
        return self._conn

    def _set_aside(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        self._prefetched_dirs.clear()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.replace(f"{self.path}{suffix}", f"{self.path}.corrupt{suffix}")
        self._prefetched.clear()

    @_locked
    def get(self, relpath: str, st: os.stat_result) -> str | None:
        """The memoised hash of `relpath` if its stat still matches and is not racy."""
        return self._lookup("hashes", relpath, st)

    @_locked
    def prefetch(self, directory: str) -> None:
        """Load the memo rows of every file below `directory` with one range query.

        Hashing a directory of many files then costs one query instead of one per file.
        """
        query = f"SELECT path, {_COLUMNS['hashes']} FROM hashes WHERE path > ? AND path < ?"
        rows = self._connect().execute(query, (directory + "/", directory + "0"))
        self._prefetched.update((row[0], row[1:]) for row in rows)
        self._prefetched_dirs.add(directory)

    def _seen_below(self, relpath: str) -> bool:
        return bool(self._prefetched_dirs) and any(
            parent in self._prefetched_dirs for parent in ancestors(relpath)
        )

    @_locked
    def get_document(self, relpath: str, st: os.stat_result) -> str | None:
        """The memoised JSON form of a parsed YAML file, under the same rules as hashes."""
        return self._lookup("documents", relpath, st)

    @_locked
    def put_document(self, relpath: str, st: os.stat_result, text: str, at_ns: int) -> None:
        """Remember a parsed document; written at once, as documents are few and large."""
        row = (relpath, st.st_ino, st.st_mtime_ns, st.st_size, text, at_ns)
        with contextlib.suppress(sqlite3.OperationalError), self._connect() as conn:
            conn.execute("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?)", row)

    def _lookup(self, table: str, relpath: str, st: os.stat_result) -> str | None:
        row = self._prefetched.pop(relpath, None) if table == "hashes" else None
        if row is None and table == "hashes" and self._seen_below(relpath):
            return None  # the range query saw every row below that directory: there is none
        if row is None:
            query = f"SELECT {_COLUMNS[table]} FROM {table} WHERE path = ?"
            row = self._connect().execute(query, (relpath,)).fetchone()
        if row is None:
            return None
        inode, mtime_ns, size, value, at_ns = row
        if (inode, mtime_ns, size) != (st.st_ino, st.st_mtime_ns, st.st_size):
            return None
        if mtime_ns + RACY_MARGIN_NS >= at_ns:
            return None
        return str(value)

    @_locked
    def put(self, relpath: str, st: os.stat_result, digest: str, hashed_at_ns: int) -> None:
        """Remember a hash computed from content read after `hashed_at_ns`."""
        self._pending.append((relpath, st.st_ino, st.st_mtime_ns, st.st_size, digest, hashed_at_ns))

    @_locked
    def flush(self) -> None:
        """Commit batched writes in one transaction."""
        if not self._pending:
            return
        conn = self._connect()
        with conn:
            conn.executemany(
                "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?)", self._pending
            )
        self._pending.clear()

    @_locked
    def close(self) -> None:
        """Flush and close; the memo is best-effort, so a busy database only loses entries."""
        with contextlib.suppress(sqlite3.OperationalError):
            self.flush()
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    return conn


_GITIGNORE = """\
# Machine-local state of `pipeline`: caches, memo, logs, temporary workspaces.
# Only the shared configuration belongs in git.
*
!.gitignore
!config.yaml
"""


def init_state_dir(path: Path) -> Path:
    """Create `.pipeline/` with a .gitignore that keeps its local state out of git."""
    ignore = path / ".gitignore"
    if not ignore.exists():
        path.mkdir(parents=True, exist_ok=True)
        ignore.write_text(_GITIGNORE, encoding="utf-8")
    return path


def now_ns() -> int:
    """Wall-clock time comparable with file mtimes."""
    return time.time_ns()
