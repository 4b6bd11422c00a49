"""The stat memo: `.pipeline/state.db` maps (path, inode, mtime_ns, size) to a content hash.

It is what makes a no-op `status` stat files instead of reading them. An entry is trusted only if
the file's mtime is safely older than the moment it was hashed: a file rewritten within the same
timestamp tick as its hashing ("racily clean", as git calls it) would otherwise keep a stale hash.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

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
) WITHOUT ROWID
"""


class StateDB:
    """A small sqlite-backed memo. Writes are batched and committed by `flush()` or `close()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[str, int, int, int, str, int]] = []

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            init_state_dir(self.path.parent)
            try:
                self._conn = _open(self.path)
            except sqlite3.DatabaseError:
                # A memo is only a cache: a damaged one is set aside and rebuilt.
                with contextlib.suppress(OSError):
                    os.replace(self.path, self.path.with_suffix(".db.corrupt"))
                self._conn = _open(self.path)
        return self._conn

    def get(self, relpath: str, st: os.stat_result) -> str | None:
        """The memoised hash of `relpath` if its stat still matches and is not racy."""
        row = (
            self._connect()
            .execute(
                "SELECT inode, mtime_ns, size, hash, hashed_at_ns FROM hashes WHERE path = ?",
                (relpath,),
            )
            .fetchone()
        )
        if row is None:
            return None
        inode, mtime_ns, size, digest, hashed_at = row
        if (inode, mtime_ns, size) != (st.st_ino, st.st_mtime_ns, st.st_size):
            return None
        if mtime_ns + RACY_MARGIN_NS >= hashed_at:
            return None
        return str(digest)

    def put(self, relpath: str, st: os.stat_result, digest: str, hashed_at_ns: int) -> None:
        """Remember a hash computed from content read after `hashed_at_ns`."""
        self._pending.append((relpath, st.st_ino, st.st_mtime_ns, st.st_size, digest, hashed_at_ns))

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
    conn.execute(_SCHEMA)
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
