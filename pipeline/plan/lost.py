"""What the cache lost of the lock: objects it names that are gone or were moved aside.

Planning must not hash (a no-op `status` only stats files), so this asks by stat alone: one stat
per output or tracked path. A directory's listing is stat'ed; its files are looked up only once
something was quarantined (`cache/corrupt/` exists), since reading every listing on every
`status` would cost more than the rest of it. A missing file of a directory is still caught by
the restore that needs it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.hashing import Hasher, HashInfo, file_digest
from pipeline.core.statmemo import now_ns
from pipeline.errors import DataError
from pipeline.store.objects import ObjectStore


@dataclass(frozen=True)
class Lost:
    """An object the lock names that the cache no longer holds."""

    digest: str
    member: str = ""  # the file inside an output directory; "" for the output itself
    quarantined: bool = False  # moved to `cache/corrupt/` (by fsck or a restore), not just gone

    def path(self, relpath: str) -> str:
        """The project path these bytes were for."""
        return f"{relpath}/{self.member}" if self.member else relpath


def lost(store: ObjectStore, info: HashInfo) -> list[Lost]:
    """The objects `info` needs that the cache lacks (empty: all there, as far as a stat tells)."""
    try:
        if not store.has(info.hash):
            return [Lost(info.hash, quarantined=_quarantined(store, info.hash))]
    except DataError:  # not even an object hash: a damaged or forged lock
        return [Lost(info.hash)]
    if not info.isdir or not store.corrupt.is_dir():
        return []
    try:
        entries = store.read_tree(info.hash)
    except DataError:  # a damaged listing, now moved aside
        return [Lost(info.hash, quarantined=True)]
    return [
        Lost(e.hash, e.path, _quarantined(store, e.hash))
        for e in entries
        if not _has(store, e.hash)
    ]


def shares_corrupt_bytes(root: Path, store: ObjectStore, relpath: str, gone: Lost) -> bool:
    """True if the workspace file is the quarantined object itself (a hardlink): then the
    workspace holds the corrupt bytes too, whatever the stat memo remembers of it."""
    if not gone.quarantined:
        return False
    try:
        return os.path.samefile(root / gone.path(relpath), _corrupt_path(store, gone.digest))
    except (OSError, DataError):
        return False


def reread(hasher: Hasher, relpaths: list[str]) -> dict[str, str]:
    """Hash files by reading them, whatever the stat memo says, and correct the memo.

    For the few files whose stat cannot be trusted (they share an inode with a corrupt object,
    or are about to become the only copy of their bytes). The memo is written at once, so that
    the executor's second look at the stage sees the truth too.
    """
    started, found = now_ns(), {}
    for relpath in relpaths:
        abspath = os.path.join(hasher.root, relpath)
        st = os.stat(abspath)  # before reading: a write during the read makes the row stale
        found[relpath] = file_digest(abspath)
        if hasher.memo is not None:
            hasher.memo.put(relpath, st, found[relpath], started)
    if hasher.memo is not None:
        hasher.memo.flush()
    return found


def _has(store: ObjectStore, digest: str) -> bool:
    try:
        return store.has(digest)
    except DataError:
        return False


def _quarantined(store: ObjectStore, digest: str) -> bool:
    try:
        return _corrupt_path(store, digest).is_file()
    except (OSError, DataError):
        return False


def _corrupt_path(store: ObjectStore, digest: str) -> Path:
    store.path(digest)  # raises for anything but a well-formed hash: no path is built from it
    return store.corrupt / digest.partition(":")[2]
