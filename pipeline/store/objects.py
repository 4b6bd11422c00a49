"""The content-addressed object store: `.pipeline/cache/objects/ab/cdef…`, one file per hash.

Objects are written to a temp file in `.pipeline/cache/tmp/` and `os.replace`d into place, so a
process killed mid-write leaves no partial object; they are read-only (0444) and never
rewritten: storing an object that exists costs one `stat`. A directory is stored as its files'
objects plus its tree manifest (the bytes its hash is computed from). An object whose bytes do
not match its name is moved to `.pipeline/cache/corrupt/` and never restored.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pipeline.core.hashing import (
    ALGORITHM,
    FileEntry,
    Hasher,
    HashInfo,
    digest_bytes,
    file_digest,
    tree_manifest,
)
from pipeline.core.paths import PathRuleError, normalize
from pipeline.core.syserrors import naming
from pipeline.errors import DataError
from pipeline.store.links import LinkUnavailable, copy_file, hardlink, place, reflink

READ_ONLY = 0o444
_HEX = re.compile(r"[0-9a-f]{3,}")
_COUNTER = itertools.count()
VERIFY_ALWAYS_BELOW = 4 << 20  # bytes: objects smaller than this are rehashed on every restore
PARALLEL_FILES = 64  # a directory with this many files to store or place uses a thread pool
FILE_WORKERS = 8
T = TypeVar("T")


@dataclass(frozen=True)
class TreeEntry:
    """One file of a stored directory: path inside it, object hash, executable bit."""

    path: str
    hash: str
    executable: bool


class ObjectStore:
    """Objects by hash under `root` (`.pipeline/cache`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.tmp = root / "tmp"
        self.corrupt = root / "corrupt"
        self._dirs_ready = False
        self._parents: set[str] = set()  # object directories known to exist
        self._refused: set[str] = set()  # strategies this filesystem refused

    def path(self, digest: str) -> Path:
        """Where the object `algorithm:hex` lives (it may not exist)."""
        return Path(self._where(digest))

    def _where(self, digest: str) -> str:
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != ALGORITHM or not _HEX.fullmatch(hexdigest):
            raise DataError(f"not an object hash: {digest!r}", "the lock file may be damaged")
        return f"{self.objects}/{hexdigest[:2]}/{hexdigest[2:]}"

    def has(self, digest: str) -> bool:
        return os.path.isfile(self._where(digest))

    def complete(self, info: HashInfo) -> bool:
        """True if every object `info` needs (a directory's files too) is stored."""
        if not self.has(info.hash):
            return False
        return not info.isdir or all(self.has(e.hash) for e in self.read_tree(info.hash))

    def put_file(self, src: str, digest: str, strategies: Sequence[str]) -> None:
        """Store the file `src` (already hashed to `digest`), cheapest strategy first."""
        target = self._where(digest)
        if os.path.exists(target):
            return
        tmp = self._temp_name()
        try:
            copied = self._store_as(src, tmp, strategies) == "copy"
            self._commit(tmp, target, chmod=not copied)  # a copy is created read-only
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _store_as(self, src: str, tmp: str, strategies: Sequence[str]) -> str:
        for strategy in strategies:
            if strategy in self._refused:
                continue
            try:
                _STORERS.get(strategy, _copy_into)(src, tmp)
                return strategy if strategy in _STORERS else "copy"
            except LinkUnavailable:
                if strategy == "reflink":  # a filesystem that cannot, cannot for any file
                    self._refused.add(strategy)
        _copy_into(src, tmp)
        return "copy"

    def put_bytes(self, data: bytes, digest: str) -> None:
        """Store bytes (a tree manifest, a log) under `digest`."""
        target = self._where(digest)
        if os.path.exists(target):
            return
        tmp = self._temp_name()
        try:
            with naming(target), open(tmp, "xb") as fh:  # a full disk then says where
                fh.write(data)
            self._commit(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def temp_path(self) -> str:
        """A fresh name in the cache's temp directory, for a download to land on."""
        return self._temp_name()

    def adopt(self, tmp: str, digest: str) -> bool:
        """Move a downloaded file into the cache if its bytes hash to `digest`.

        A mismatch deletes it and returns False: a damaged or forged object never enters.
        """
        try:
            if file_digest(tmp) != digest:
                return False
            if not os.path.exists(self._where(digest)):
                self._commit(tmp, self._where(digest))
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def adopt_bytes(self, data: bytes, digest: str) -> bool:
        """`adopt` for bytes already in memory (a member of a pack)."""
        if digest_bytes(data) != digest:
            return False
        self.put_bytes(data, digest)
        return True

    def read_tree(self, digest: str) -> list[TreeEntry]:
        """The entries of a stored directory."""
        try:
            rows = json.loads(self.path(digest).read_bytes())
        except FileNotFoundError:
            raise DataError(f"directory object {digest} is not in the cache") from None
        except (ValueError, UnicodeDecodeError) as exc:
            self.quarantine(digest)
            raise DataError(
                f"directory object {digest} is corrupt ({exc})", "run `pipeline fsck`"
            ) from None
        entries = [TreeEntry(r["path"], r["hash"], bool(r["x"])) for r in rows]
        if any(e.path != _inside(e.path) for e in entries):  # never place files outside
            self.quarantine(digest)
            raise DataError(
                f"directory object {digest} lists a path outside its directory",
                "run `pipeline fsck`",
            )
        return entries

    def verify(self, digest: str) -> bool:
        """Rehash an object; a mismatch moves it to `corrupt/` and returns False."""
        path = self.path(digest)
        if file_digest(path) == digest:
            return True
        self.quarantine(digest)
        return False

    def quarantine(self, digest: str) -> Path:
        """Move an object out of the way, so it is never restored again."""
        self.corrupt.mkdir(parents=True, exist_ok=True)
        dest = self.corrupt / digest.partition(":")[2]
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path(digest), dest)
        return dest

    def fsck(self) -> Iterator[tuple[str, bool]]:
        """Rehash every object: (hash, intact); damaged ones are moved to `corrupt/`."""
        for digest in list(self.all_objects()):
            yield digest, self.verify(digest)

    def all_objects(self) -> Iterator[str]:
        """Every stored object's hash."""
        if not self.objects.is_dir():
            return
        for prefix in sorted(os.listdir(self.objects)):
            for rest in sorted(os.listdir(self.objects / prefix)):
                yield f"{ALGORITHM}:{prefix}{rest}"

    def _temp_name(self) -> str:
        """A unique temp path in the cache, not created: whoever writes it creates it.

        Creating a file is what costs most on slow disks (0.7 ms here against 16 µs for a
        hardlink), so the name a link will create is only reserved, not created.
        """
        if not self._dirs_ready:
            self.tmp.mkdir(parents=True, exist_ok=True)
            self._dirs_ready = True
        return f"{self.tmp}/obj.{os.getpid()}.{threading.get_ident()}.{next(_COUNTER)}"

    def _commit(self, tmp: str, target: str, *, chmod: bool = True) -> None:
        if chmod:
            os.chmod(tmp, READ_ONLY)
        parent = os.path.dirname(target)
        if parent not in self._parents:
            os.makedirs(parent, exist_ok=True)
            self._parents.add(parent)
        os.replace(tmp, target)


def _inside(path: str) -> str:
    """`path` normalised, or "" when it is absolute or climbs out of its directory."""
    try:
        return normalize(path)
    except PathRuleError:
        return ""


def _copy_into(src: str, dst: str) -> None:
    copy_file(src, dst, READ_ONLY)


# A symlink strategy still stores a real file (the workspace gets the link).
_STORERS = {"reflink": reflink, "hardlink": hardlink, "copy": _copy_into}


def restore_strategies(configured: Sequence[str] | None, executable: bool = False) -> list[str]:
    """How to place objects in the workspace: the configured strategies, else reflink or copy.

    Executable files of a directory are always copied (reflink if possible): a hardlink or
    symlink would share the object's read-only, non-executable mode.
    """
    chosen = list(configured or ("reflink", "copy"))
    if executable:
        chosen = [s for s in chosen if s not in ("hardlink", "symlink")]
    return [*chosen, "copy"] if "copy" not in chosen else chosen


def store_strategies(configured: Sequence[str] | None) -> list[str]:
    """How to store workspace files in the cache: by default a reflink, else a copy.

    Neither shares an inode with the workspace file, so nothing that writes into a tracked
    file in place (a notebook, a script running as root) can change the cached version. A
    configured `hardlink` stores by linking instead: free, but the workspace file and the
    object are then one file, made read-only.
    """
    if configured is not None:
        chosen = [s for s in configured if s != "symlink"]
        return [*chosen, "copy"] if "copy" not in chosen else chosen
    return ["reflink", "copy"]


def store_output(
    store: ObjectStore, hasher: Hasher, relpath: str, info: HashInfo, strategies: Sequence[str]
) -> None:
    """Put a hashed output (file or directory) into the cache.

    Executable files and symlinks are copied, never hardlinked: a link would share the
    object's read-only, non-executable mode (or link to the symlink itself, and make its target
    read-only). Nothing read through a symlink out of the project is ever stored.
    """
    hasher.check_inside(relpath)
    if not info.isdir:
        path = str(hasher.root / relpath)
        store.put_file(path, info.hash, _for_file(path, strategies))
        return
    entries = hasher.tree(relpath)
    missing = list({e.hash: e for e in entries if not store.has(e.hash)}.values())

    def put(entry: FileEntry) -> None:
        store.put_file(entry.abspath, entry.hash, _for_file(entry.abspath, strategies))

    for_each_file(put, missing)
    manifest = tree_manifest((e.path, e.hash, e.executable) for e in entries)
    store.put_bytes(manifest, info.hash)


def for_each_file(func: Callable[[T], object], items: Sequence[T]) -> None:
    """`func` on every item, by a thread pool once there are many: creating, copying and
    reading many small files waits on the disk rather than the CPU. The first failure is
    raised, and what had not started yet is cancelled."""
    if len(items) < PARALLEL_FILES:
        for item in items:
            func(item)
        return
    with ThreadPoolExecutor(FILE_WORKERS) as pool:
        jobs = [pool.submit(func, item) for item in items]
        try:
            for job in jobs:
                job.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def _for_file(path: str, strategies: Sequence[str]) -> Sequence[str]:
    if "hardlink" not in strategies:
        return strategies  # nothing to decide: no stat (20,000 of them cost seconds on `add`)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or st.st_mode & 0o111:
        return [s for s in strategies if s != "hardlink"] or ["copy"]
    return strategies


def place_object(store: ObjectStore, digest: str, dst: str, strategies: Sequence[str]) -> str:
    """Put object `digest` at workspace path `dst` (which must not exist)."""
    return place(str(store.path(digest)), dst, strategies)
