"""The per-user env cache: `$XDG_CACHE_HOME/pipeline/envs/<digest>`, shared by all projects.

An env is built in its own directory under `.store/` and published by atomically renaming a
symlink `<digest>` → `.store/<digest>.<token>`. The env is built where it will stay, because
venvs and conda envs write their absolute prefix into files and cannot be moved; the rename is
what makes a half-built env invisible. Builds of one digest are serialised by a file lock
(other processes) and a thread lock (`-j` workers of this one), and the loser of the race finds
the winner's env. A failed build is removed; a crashed one is removed by the next build or
`pipeline env prune`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from pipeline.core.atomic import atomic_write_text
from pipeline.load.envkind import EnvKind

META = "pipeline-env.json"
_STORE = ".store"
_LOCKS = ".locks"


def default_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).absolute() / "pipeline" / "envs"


@dataclass(frozen=True)
class BuiltEnv:
    """A published env: where it lives and what its metadata says was installed."""

    digest: str
    prefix: Path  # the real directory (what the env's own files refer to)
    meta: dict[str, Any]
    last_used: float

    @property
    def name(self) -> str:
        return str(self.meta.get("name", ""))

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind", ""))

    @property
    def is_conda(self) -> bool:
        return self.kind in (EnvKind.CONDA_ENV, EnvKind.CONDA_LOCK)

    @property
    def packages(self) -> list[list[str]]:
        return list(self.meta.get("packages", []))

    @property
    def variables(self) -> dict[str, str]:
        return dict(self.meta.get("variables", {}))


def dirname(digest: str) -> str:
    return digest.rsplit(":", maxsplit=1)[-1]


class EnvStore:
    """Published envs by digest, and the one-build-per-digest protocol."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_root()
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @property
    def conda_cache(self) -> Path:
        """rattler's package and repodata cache, beside the envs (hardlinks need one volume)."""
        return self.root.parent / "conda"

    def lookup(self, digest: str) -> BuiltEnv | None:
        """The published env for `digest`, or None."""
        link = self.root / dirname(digest)
        try:
            meta = json.loads((link / META).read_text(encoding="utf-8"))
            used = link.lstat().st_mtime
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict):
            return None  # damaged: counts as not built, and the next build replaces it
        return BuiltEnv(str(meta.get("digest", digest)), link.resolve(), meta, used)

    def ensure(
        self,
        digest: str,
        build: Callable[[Path], dict[str, Any]],
        on_wait: Callable[[], None] | None = None,
    ) -> tuple[BuiltEnv, bool]:
        """The env for `digest`, built by `build(prefix) -> metadata` unless it exists.

        Returns the env and whether this call built it.
        """
        found = self.lookup(digest)
        if found is not None:
            return found, False
        with self._thread_lock(digest), self._file_lock(digest, on_wait):
            found = self.lookup(digest)  # built while we waited
            if found is not None:
                return found, False
            return self._build(digest, build), True

    def _build(self, digest: str, build: Callable[[Path], dict[str, Any]]) -> BuiltEnv:
        name = dirname(digest)
        self._remove_partial(name)
        prefix = self.root / _STORE / f"{name}.{secrets.token_hex(4)}"
        prefix.mkdir(parents=True)
        try:
            meta = build(prefix)
            meta = {**meta, "digest": digest, "created": time.time()}
            atomic_write_text(prefix / META, json.dumps(meta, indent=1, sort_keys=True) + "\n")
            self._publish(name, prefix)
        except BaseException:
            shutil.rmtree(prefix, ignore_errors=True)
            raise
        built = self.lookup(digest)
        assert built is not None
        return built

    def _publish(self, name: str, prefix: Path) -> None:
        temp = self.root / f".{name}.{secrets.token_hex(4)}.link"
        os.symlink(os.path.relpath(prefix, self.root), temp)
        os.replace(temp, self.root / name)

    def _remove_partial(self, name: str) -> None:
        """Directories of earlier builds of `name` that crashed before publishing."""
        published = self.root / name
        target = published.resolve() if published.is_symlink() else None
        for path in (self.root / _STORE).glob(f"{name}.*"):
            if path != target:
                shutil.rmtree(path, ignore_errors=True)

    def touch(self, digest: str) -> None:
        """Record a use (the symlink's mtime), for `pipeline env prune --days`."""
        with contextlib.suppress(OSError):
            os.utime(self.root / dirname(digest), follow_symlinks=False)

    def all(self) -> list[BuiltEnv]:
        """Every published env, most recently used first."""
        found = []
        for link in self.root.glob("*") if self.root.is_dir() else ():
            if link.is_symlink():
                built = self.lookup(link.name)
                if built is not None:
                    found.append(built)
        return sorted(found, key=lambda b: -b.last_used)

    @contextlib.contextmanager
    def using(self, digest: str) -> Iterator[None]:
        """Mark the env in use (a shared lock) while a stage runs in it; `remove` skips it."""
        fd = self._use_fd(digest)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def remove(self, digest: str) -> bool:
        """Unpublish then delete an env, unless a stage is using it (then False).

        Runs under its build lock, so no build races it, and holds the use lock exclusively,
        so a stage about to use it waits and then finds it gone (and rebuilds it).
        """
        name = dirname(digest)
        fd = self._use_fd(digest)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            with self._thread_lock(digest), self._file_lock(digest, None):
                link = self.root / name
                target = link.resolve() if link.is_symlink() else None
                link.unlink(missing_ok=True)
                if target is not None:
                    shutil.rmtree(target, ignore_errors=True)
                self._remove_partial(name)
            return True
        finally:
            os.close(fd)

    def _use_fd(self, digest: str) -> int:
        locks = self.root / _LOCKS
        locks.mkdir(parents=True, exist_ok=True)
        return os.open(locks / f"{dirname(digest)}.use", os.O_RDWR | os.O_CREAT, 0o644)

    def dangling(self) -> list[Path]:
        """Published names whose env is gone or unreadable (deleted by hand, damaged)."""
        links = [p for p in self.root.glob("*") if p.is_symlink()] if self.root.is_dir() else []
        return [link for link in links if self.lookup(link.name) is None]

    def orphans(self) -> list[Path]:
        """Build directories no symlink publishes (left by a crash or a removed link)."""
        published = {p.resolve() for p in self.root.glob("*") if p.is_symlink()}
        store = self.root / _STORE
        return [p for p in store.glob("*") if p not in published] if store.is_dir() else []

    def remove_orphan(self, path: Path) -> bool:
        """Delete an orphan unless its digest is being built right now."""
        name = path.name.split(".")[0]
        with self._file_lock(name, None, wait=False) as held:
            if held and path in self.orphans():
                shutil.rmtree(path, ignore_errors=True)
                return True
        return False

    def _thread_lock(self, digest: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(digest, threading.Lock())

    @contextlib.contextmanager
    def _file_lock(
        self, digest: str, on_wait: Callable[[], None] | None, *, wait: bool = True
    ) -> Iterator[bool]:
        """Hold the build lock of `digest`; yields False if busy and not `wait`ing."""
        locks = self.root / _LOCKS
        locks.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(locks / f"{dirname(digest)}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:  # another process is building this env
            if not wait:
                yield False
                return
            if on_wait is not None:
                on_wait()
            lock.acquire()
        try:
            yield True
        finally:
            lock.release()
