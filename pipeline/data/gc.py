"""`pipeline gc`: free cache objects no lock refers to.

What is kept depends on the scope: the current lock only (`workspace`), plus the lock in every
commit of every local branch (`branches`, the default), or in every commit any ref or reflog
reaches (`all-commits`). The current workspace's lock is always kept. Run-cache entries whose
outputs would be freed go too; the rest keep their log objects.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.core.lockfile import Lock
from pipeline.data.history import SCOPES, locks_in
from pipeline.errors import UsageError
from pipeline.plan.session import Session
from pipeline.store.objects import ObjectStore
from pipeline.store.runcache import RunCache


@dataclass
class GcReport:
    """What gc removed (or, dry, would remove) and what it kept."""

    removed: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    kept: int = 0
    runs_removed: int = 0
    locks_read: int = 0


def collect(session: Session, scope: str, *, dry: bool = False) -> GcReport:
    """Remove every object that no lock in `scope` (nor a kept run) needs."""
    if scope not in SCOPES:
        raise UsageError(f"unknown gc scope {scope!r}", f"use one of {', '.join(SCOPES)}")
    locks = [session.lock, *locks_in(session.project.root, scope)]
    keep = _referenced(session.store, locks)
    report = GcReport(locks_read=len(locks))
    report.runs_removed = _prune_runs(RunCache(session.store), keep, dry)
    if not dry:
        _clear_stale_temps(session.store)
    for digest in list(session.store.all_objects()):
        if digest in keep:
            report.kept += 1
            continue
        path = session.store.path(digest)
        report.removed.append(digest)
        report.freed_bytes += path.stat().st_size
        if not dry:
            path.unlink()
    return report


STALE_TEMP_SECONDS = 24 * 3600  # a temp this old belongs to no running writer


def _clear_stale_temps(store: ObjectStore) -> None:
    """Remove what killed writers left in `cache/tmp/` (never a partial object: see cache.py)."""
    if not store.tmp.is_dir():
        return
    cutoff = time.time() - STALE_TEMP_SECONDS
    for leftover in store.tmp.iterdir():
        with contextlib.suppress(OSError):
            if leftover.lstat().st_mtime < cutoff:
                leftover.unlink()


def _referenced(store: ObjectStore, locks: Iterable[Lock]) -> set[str]:
    keep: set[str] = set()
    for lock in locks:
        infos = [o.info for e in lock.stages.values() for o in e.outs] + list(lock.data.values())
        for info in infos:
            keep.add(info.hash)
            if info.isdir and store.has(info.hash):
                keep.update(e.hash for e in store.read_tree(info.hash))
    return keep


def _prune_runs(runs: RunCache, keep: set[str], dry: bool) -> int:
    removed = 0
    for path, entry in list(runs.all_entries()):
        if entry is not None and all(o.info.hash in keep for o in entry.outs):
            if entry.log:
                keep.add(entry.log)
            continue
        removed += 1
        if not dry:
            path.unlink(missing_ok=True)
    return removed
