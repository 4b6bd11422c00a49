"""The stat memo: `.pipeline/state.db` maps (path, inode, mtime_ns, size) to a content hash.

It is what makes a no-op `status` stat files instead of reading them. An entry is trusted only if
the file's mtime is safely older than the moment it was hashed: a file rewritten within the same
timestamp tick as its hashing ("racily clean", as git calls it) would otherwise keep a stale hash.

The memo is only a cache, so it never fails a command: a damaged file is set aside and rebuilt,
a row that does not read back exactly as written (wrong types, bytes that are not UTF-8, a
document whose checksum differs) is a miss, and a database the machine refuses (full, read-only,
busy, failing) is simply not used for the rest of the command.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

import xxhash

from pipeline.core.paths import ancestors
from pipeline.core.syserrors import ENVIRONMENTAL, sqlite_code

# Larger than any Linux filesystem's timestamp granularity (ext4/xfs tick at most every 10 ms).
RACY_MARGIN_NS = 100_000_000

# Parsed documents carry a checksum of their JSON: a damaged one reads as a miss, never as a
# different document. They moved from `documents` (version 1, no checksum) to `parsed`.
_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY,
    inode INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    hash TEXT NOT NULL,
    hashed_at_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parsed (
    path TEXT PRIMARY KEY,
    inode INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    json TEXT NOT NULL,
    parsed_at_ns INTEGER NOT NULL,
    checksum TEXT NOT NULL
) WITHOUT ROWID;
"""

_COLUMNS = {
    "hashes": "inode, mtime_ns, size, hash, hashed_at_ns",
    "parsed": "inode, mtime_ns, size, json, parsed_at_ns, checksum",
}
_DIGEST = re.compile(r"[a-z0-9_]+:[0-9a-f]{16,}")


P = ParamSpec("P")
R = TypeVar("R")


def _healing(method: Callable[P, R | None]) -> Callable[P, R | None]:
    """Serialise a StatMemo method (one connection, one thread at a time); never fail on it.

    A damaged file is set aside as `state.db.corrupt` and the call retried on a fresh one; a
    database the machine refuses switches the memo off (the call returns None). Only an error
    a fresh database still raises, or one sqlite did not raise, is a bug and propagates.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        db = cast(StatMemo, args[0])
        with db._lock:
            for again in (False, True):
                if db._off:
                    return None
                try:
                    return method(*args, **kwargs)
                except (sqlite3.Error, OSError) as exc:
                    if not db._heal(exc, again=again):
                        raise
            return None

    return wrapper


class StatMemo:
    """A small sqlite-backed memo. Writes are batched and committed by `flush()` or `close()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[str, int, int, int, str, int]] = []
        self._prefetched: dict[str, tuple[Any, ...]] = {}
        self._prefetched_dirs: set[str] = set()
        self._off = False  # the machine refused the database: work without a memo
        # One connection shared by the worker threads of a parallel run, used one at a time.
        self._lock = threading.RLock()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            init_state_dir(self.path.parent)
            self._conn = _open(self.path)
        return self._conn

    def _heal(self, exc: Exception, *, again: bool) -> bool:
        """Recover from `exc` by switching off or setting aside; False if it is a bug."""
        code = sqlite_code(exc)
        if isinstance(exc, OSError) or code in ENVIRONMENTAL:
            self._switch_off()
            return True
        if code is None or again:
            return False
        if not self._set_aside():
            self._switch_off()
        return True

    def _switch_off(self) -> None:
        self._disconnect()
        self._pending.clear()
        self._off = True

    def _set_aside(self) -> bool:
        """Move the damaged files out of the way; False if the main one could not be moved."""
        self._disconnect()
        moved = True
        for suffix in ("", "-wal", "-shm"):
            try:
                os.replace(f"{self.path}{suffix}", f"{self.path}.corrupt{suffix}")
            except FileNotFoundError:
                pass
            except OSError:
                moved = moved and suffix != ""
        return moved

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        self._prefetched.clear()
        self._prefetched_dirs.clear()

    @_healing
    def get(self, relpath: str, st: os.stat_result) -> str | None:
        """The memoised hash of `relpath` if its stat still matches and is not racy."""
        value = self._lookup("hashes", relpath, st)
        return value if value is not None and _DIGEST.fullmatch(value) else None

    @_healing
    def prefetch(self, directory: str) -> None:
        """Load the memo rows of every file below `directory` with one range query.

        Hashing a directory of many files then costs one query instead of one per file.
        """
        query = f"SELECT path, {_COLUMNS['hashes']} FROM hashes WHERE path > ? AND path < ?"
        rows = self._connect().execute(query, (directory + "/", directory + "0")).fetchall()
        self._prefetched.update((row[0], row[1:]) for row in rows if isinstance(row[0], str))
        self._prefetched_dirs.add(directory)

    def _seen_below(self, relpath: str) -> bool:
        return bool(self._prefetched_dirs) and any(
            parent in self._prefetched_dirs for parent in ancestors(relpath)
        )

    @_healing
    def get_document(self, relpath: str, st: os.stat_result) -> str | None:
        """The memoised JSON form of a parsed YAML file, under the same rules as hashes."""
        return self._lookup("parsed", relpath, st)

    @_healing
    def put_document(self, relpath: str, st: os.stat_result, text: str, at_ns: int) -> None:
        """Remember a parsed document; written at once, as documents are few and large."""
        row = (relpath, st.st_ino, st.st_mtime_ns, st.st_size, text, at_ns, _checksum(text))
        with self._connect() as conn:
            conn.execute("INSERT OR REPLACE INTO parsed VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    def _lookup(self, table: str, relpath: str, st: os.stat_result) -> str | None:
        row = self._prefetched.pop(relpath, None) if table == "hashes" else None
        if row is None and table == "hashes" and self._seen_below(relpath):
            return None  # the range query saw every row below that directory: there is none
        if row is None:
            query = f"SELECT {_COLUMNS[table]} FROM {table} WHERE path = ?"
            row = self._connect().execute(query, (relpath,)).fetchone()
        if row is None or not _intact(row):
            return None
        inode, mtime_ns, size, value, at_ns = row[:5]
        if (inode, mtime_ns, size) != (st.st_ino, st.st_mtime_ns, st.st_size):
            return None
        if mtime_ns + RACY_MARGIN_NS >= at_ns:
            return None
        return cast(str, value)

    @_healing
    def put(self, relpath: str, st: os.stat_result, digest: str, hashed_at_ns: int) -> None:
        """Remember a hash computed from content read after `hashed_at_ns`."""
        self._pending.append((relpath, st.st_ino, st.st_mtime_ns, st.st_size, digest, hashed_at_ns))

    @_healing
    def flush(self) -> None:
        """Commit batched writes in one transaction."""
        if not self._pending:
            return
        with self._connect() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?)", self._pending
            )
        self._pending.clear()

    @_healing
    def close(self) -> None:
        """Flush and close; entries the database refuses are lost, as a cache's may be."""
        self.flush()
        self._disconnect()


def _intact(row: tuple[Any, ...]) -> bool:
    """True if a row reads back as written: integers, a text value, a matching checksum."""
    inode, mtime_ns, size, value, at_ns = row[:5]
    if not all(type(n) is int for n in (inode, mtime_ns, size, at_ns)):
        return False
    if not isinstance(value, str):
        return False
    return len(row) == 5 or row[5] == _checksum(value)


def _checksum(text: str) -> str:
    return xxhash.xxh3_64_hexdigest(text.encode("utf-8", "surrogatepass"))


def _text(raw: bytes) -> str | None:
    """How sqlite's TEXT values are read: bytes that are not UTF-8 are a damaged row (None)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
    conn.text_factory = _text
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    if conn.execute("PRAGMA user_version").fetchone()[0] < _VERSION:
        conn.executescript(f"DROP TABLE IF EXISTS documents; PRAGMA user_version = {_VERSION};")
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
