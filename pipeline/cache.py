"""The content-addressed object store: `.pipeline/cache/objects/ab/cdef…`, one file per hash.

Objects are written to a temp file in `.pipeline/cache/tmp/` and `os.replace`d into place, so a
process killed mid-write leaves no partial object; they are read-only (0444) and never
rewritten: storing an object that exists costs one `stat`. A directory is stored as its files'
objects plus its tree manifest (the bytes its hash is computed from). An object whose bytes do
not match its name is moved to `.pipeline/cache/corrupt/` and never restored.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import DataError
from pipeline.hashing import ALGORITHM, Hasher, HashInfo, file_digest, tree_manifest
from pipeline.links import LinkUnavailable, hardlink, place, reflink

READ_ONLY = 0o444
VERIFY_ALWAYS_BELOW = 4 << 20  # bytes: objects smaller than this are rehashed on every restore


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

    def path(self, digest: str) -> Path:
        """Where the object `algorithm:hex` lives (it may not exist)."""
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != ALGORITHM or len(hexdigest) < 3 or not _is_hex(hexdigest):
            raise DataError(f"not an object hash: {digest!r}", "the lock file may be damaged")
        return self.objects / hexdigest[:2] / hexdigest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def complete(self, info: HashInfo) -> bool:
        """True if every object `info` needs (a directory's files too) is stored."""
        if not self.has(info.hash):
            return False
        return not info.isdir or all(self.has(e.hash) for e in self.read_tree(info.hash))

    def put_file(self, src: str, digest: str, strategies: Sequence[str]) -> None:
        """Store the file `src` (already hashed to `digest`), cheapest strategy first."""
        target = self.path(digest)
        if target.exists():
            return
        with self._temp() as tmp:
            os.unlink(tmp)
            for strategy in strategies:
                with contextlib.suppress(LinkUnavailable):
                    _STORERS.get(strategy, _copy_into)(src, tmp)
                    break
            else:
                _copy_into(src, tmp)
            self._commit(tmp, target)

    def put_bytes(self, data: bytes, digest: str) -> None:
        """Store bytes (a tree manifest, a log) under `digest`."""
        target = self.path(digest)
        if target.exists():
            return
        with self._temp() as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
            self._commit(tmp, target)

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
        return [TreeEntry(r["path"], r["hash"], bool(r["x"])) for r in rows]

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

    @contextlib.contextmanager
    def _temp(self) -> Iterator[str]:
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix="obj.")
        os.close(fd)
        try:
            yield tmp
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _commit(self, tmp: str, target: Path) -> None:
        os.chmod(tmp, READ_ONLY)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)


def _copy_into(src: str, dst: str) -> None:
    shutil.copyfile(src, dst)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


# Storing prefers strategies that share the bytes with the workspace file: they cost nothing
# for a 1 GB model. A symlink strategy still stores a real file (the workspace gets the link).
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


def store_strategies(configured: Sequence[str] | None, *, outputs: bool = True) -> list[str]:
    """How to store workspace files in the cache.

    Stage outputs are stored by reflink or hardlink (free for a 1 GB model): a stage deletes
    its outputs before it runs, so it never writes through the link. Data added by hand is
    edited by hand, in place, so it is linked only if `cache.type` says so; else cloned or
    copied.
    """
    if configured is not None:
        chosen = [s for s in configured if s != "symlink"]
        return [*chosen, "copy"] if "copy" not in chosen else chosen
    return ["reflink", "hardlink", "copy"] if outputs else ["reflink", "copy"]


def store_output(
    store: ObjectStore, hasher: Hasher, relpath: str, info: HashInfo, strategies: Sequence[str]
) -> None:
    """Put a hashed output (file or directory) into the cache.

    Executable files are copied, never linked: a link would share the object's read-only,
    non-executable mode and change the directory's hash.
    """
    if not info.isdir:
        store.put_file(str(hasher.root / relpath), info.hash, strategies)
        return
    entries = hasher.tree(relpath)
    plain = [s for s in strategies if s != "hardlink"]
    for entry in entries:
        store.put_file(entry.abspath, entry.hash, plain if entry.executable else strategies)
    manifest = tree_manifest((e.path, e.hash, e.executable) for e in entries)
    store.put_bytes(manifest, info.hash)


def place_object(store: ObjectStore, digest: str, dst: str, strategies: Sequence[str]) -> str:
    """Put object `digest` at workspace path `dst` (which must not exist)."""
    return place(str(store.path(digest)), dst, strategies)
