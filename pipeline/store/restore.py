"""Bringing outputs back from the cache: one path at a time, or the whole workspace.

Every restore checks the object first: objects under 4 MiB are rehashed each time; larger ones
are trusted by size and by the stat memo (an object rewritten in place would change its mtime),
unless `verify` asks for a full rehash. A corrupt object is moved aside and reported, never
restored.
"""

from __future__ import annotations

import os
import shutil
import stat as statmod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.hashing import Hasher, HashInfo
from pipeline.core.paths import Bounds
from pipeline.errors import DataError
from pipeline.store.objects import (
    VERIFY_ALWAYS_BELOW,
    ObjectStore,
    TreeEntry,
    for_each_file,
    place_object,
    restore_strategies,
)


@dataclass
class Restorer:
    """Places cached objects at project paths with the configured link strategy."""

    root: Path
    store: ObjectStore
    hasher: Hasher
    strategies: Sequence[str] | None = None
    verify: bool = False

    def restore(self, relpath: str, info: HashInfo) -> None:
        """Replace whatever is at `relpath` by the cached content `info`."""
        target = Path(self.hasher.bounds.path(relpath, follow=False))
        if info.isdir:  # the listing decides every file placed: check it like any object
            self._check(relpath, info.hash, -1)
        entries = self.store.read_tree(info.hash) if info.isdir else None
        for_each_file(lambda obj: self._check(relpath, *obj), self._objects(info, entries))
        remove(target)
        make_parent(target, self.root)
        if entries is None:
            self._place(info.hash, target, executable=False)
        else:
            self._place_tree(entries, target)
        self.hasher.forget(relpath)

    def _objects(self, info: HashInfo, entries: list[TreeEntry] | None) -> list[tuple[str, int]]:
        if entries is None:
            return [(info.hash, info.size)]
        return [(e.hash, -1) for e in entries]

    def _place_tree(self, entries: list[TreeEntry], target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for parent in sorted({(target / e.path).parent for e in entries}):
            parent.mkdir(parents=True, exist_ok=True)

        def place(entry: TreeEntry) -> None:
            self._place(entry.hash, target / entry.path, executable=entry.executable)

        for_each_file(place, entries)

    def _place(self, digest: str, dest: Path, *, executable: bool) -> None:
        strategies = restore_strategies(self.strategies, executable)
        place_object(self.store, digest, str(dest), strategies)
        if executable:
            os.chmod(dest, 0o755)

    def _check(self, relpath: str, digest: str, size: int) -> None:
        obj = self.store.path(digest)
        try:
            st = os.stat(obj)
        except FileNotFoundError:
            raise DataError(
                f"{relpath}: object {digest} is not in the cache",
                "run `pipeline repro` to rebuild it",
            ) from None
        if not statmod.S_ISREG(st.st_mode) or (size >= 0 and st.st_size != size):
            self._corrupt(relpath, digest)  # a directory or device planted there is no object
        if self.verify or st.st_size < VERIFY_ALWAYS_BELOW:
            if not self.store.verify(digest):
                self._corrupt(relpath, digest, moved=True)
            return
        # The memo rehashes the object if anything touched it since it was last hashed.
        memo = self.hasher.hash(os.path.relpath(obj, self.root), cache_object=True)
        if memo is None or memo.hash != digest:
            self._corrupt(relpath, digest)

    def _corrupt(self, relpath: str, digest: str, moved: bool = False) -> None:
        where = self.store.quarantine(digest) if not moved else self.store.corrupt
        raise DataError(
            f"{relpath}: cached object {digest} is corrupt; moved it to "
            f"{os.path.relpath(where, self.root)}",
            "run `pipeline repro` to rebuild the output, and `pipeline fsck` to check the rest",
        )


class ParentIsAFile(DataError):
    """A file stands where a path's parent directory must be: the workspace is in the way, the
    cached object is fine."""


def make_parent(path: Path, root: Path) -> None:
    """Create `path`'s parent directories; a file standing in the way is a clear error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next(p for p in path.parents if p.is_file() or p.is_symlink())
        raise ParentIsAFile(
            f"cannot place {path.relative_to(root)}: {blocking.relative_to(root)} is a file",
            "move that file away; a directory of that name is expected",
        ) from None


def clear(bounds: Bounds, relpath: str, *, keep: bool = False) -> Path:
    """Make way for a stage to write `relpath`: delete what is there (unless `keep`), create
    its parent directories. Nothing outside the project is touched: `bounds` checks first."""
    path = Path(bounds.path(relpath, follow=False))
    if not keep:
        remove(path)
    make_parent(path, Path(bounds.root))
    return path


def remove(path: Path) -> None:
    """Delete a file, symlink or directory tree (read-only linked files included)."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # nothing there, or a parent is a file
        return
    if statmod.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()
