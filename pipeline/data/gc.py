"""`pipeline gc`: free cache objects no lock refers to; `gc --remote NAME`: the same on a remote.

What is kept depends on the scope: the current lock only (`workspace`), plus the lock in every
commit of every local branch (`branches`, the default), or in every commit any ref or reflog
reaches (`all-commits`). The current workspace's lock is always kept, and so is everything a
recorded run or a running experiment needs (`runkeep.py`): runs leave only when dropped
(`--runs-older-than`, `--drop-runs`). Run-cache entries whose outputs would be freed go too;
the rest keep their log objects. Workspaces that killed experiments left are removed.

On a remote, the keep-rules are the same, plus every object a shared run record needs (its
kept files, logs, and its lock's outputs). A pack goes only when all its members are dead.
The remote's generation is renewed after deleting, so every machine's list of what the remote
holds is dropped rather than trusted. A remote shared by several projects keeps only what
this one needs: the command says so, and runs only when named explicitly.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.core.hashing import HashInfo
from pipeline.core.lockfile import Lock
from pipeline.data.history import SCOPES, locks_in
from pipeline.data.runkeep import RunDrop, drop_runs, fresh_objects, live_experiments
from pipeline.data.sync import connect, lock_outputs, remote_documents, remote_registered
from pipeline.errors import UsageError
from pipeline.plan.session import Session
from pipeline.runs.workspaces import clear_dead
from pipeline.store.known import Location
from pipeline.store.objects import ObjectStore
from pipeline.store.packs import list_packs, read_index
from pipeline.store.remote import Remote
from pipeline.store.runcache import RunCache, parse_entry
from pipeline.store.transfer import Transfer, digest_of


@dataclass
class GcReport:
    """What gc removed (or, dry, would remove) and what it kept."""

    removed: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    kept: int = 0
    runs_removed: int = 0  # run-cache entries
    locks_read: int = 0
    remote: str | None = None  # `gc --remote`: which one
    runs_dropped: list[str] = field(default_factory=list)  # recorded runs (ids) dropped
    workspaces_cleared: list[str] = field(default_factory=list)  # of killed experiments
    live_experiments: int = 0  # leases of running experiments seen
    kept_for_live: int = 0  # objects kept only because a running experiment may need them


def collect(
    session: Session, scope: str, *, dry: bool = False, drop: RunDrop | None = None
) -> GcReport:
    """Remove every object that no lock in `scope`, recorded run or running experiment needs.

    `drop` first drops recorded runs from the run store: then their objects may go too.
    """
    if scope not in SCOPES:
        raise UsageError(f"unknown gc scope {scope!r}", f"use one of {', '.join(SCOPES)}")
    state_dir, store = session.project.state_dir, session.store
    report = GcReport(workspaces_cleared=clear_dead(state_dir, dry=dry))
    live = live_experiments(state_dir, store)  # before the run store: see runkeep.py
    locks = [session.lock, *locks_in(session.project.root, scope)]
    report.locks_read, report.live_experiments = len(locks), len(live.owners)
    keep = _referenced(store, locks) | live.named
    report.runs_dropped, needed = drop_runs(state_dir, store, drop or RunDrop(), dry=dry)
    keep |= needed
    fresh = fresh_objects(store, live.since) - keep
    report.kept_for_live = len(fresh)
    keep |= fresh
    report.runs_removed = _prune_runs(RunCache(store), keep, dry)  # adds the kept entries' logs
    if not dry:
        _clear_stale_temps(store)
    _free(store, keep, report, dry)
    return report


def _free(store: ObjectStore, keep: set[str], report: GcReport, dry: bool) -> None:
    for digest in list(store.all_objects()):
        if digest in keep:
            report.kept += 1
            continue
        path = store.path(digest)
        report.removed.append(digest)
        report.freed_bytes += path.stat().st_size
        if not dry:
            path.unlink()


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


# --- gc --remote --------------------------------------------------------------------------


def collect_remote(session: Session, scope: str, name: str, *, dry: bool = False) -> GcReport:
    """Delete from the remote `name` what no lock in `scope` and no shared run record needs."""
    if scope not in SCOPES:
        raise UsageError(f"unknown gc scope {scope!r}", f"use one of {', '.join(SCOPES)}")
    locks = [session.lock, *locks_in(session.project.root, scope)]
    report = GcReport(locks_read=len(locks), remote=name)
    with connect(session, name) as transfer:
        transfer.open(writing=not dry)
        keep = _remote_keep(session, transfer, locks)
        dead_runs = _dead_entries(transfer, keep)
        loose, packs = _remote_objects(transfer)
        dead_loose = {p: size for p, size in loose.items() if digest_of(p) not in keep}
        dead_packs = {p: m for p, m in packs.items() if not set(m) & keep}
        in_packs = {d for m in dead_packs.values() for d in m}
        report.removed = sorted({*(digest_of(p) for p in dead_loose), *in_packs})
        report.freed_bytes = sum(dead_loose.values())
        report.freed_bytes += sum(loc.size for m in dead_packs.values() for loc in m.values())
        everything = {digest_of(p) for p in loose} | {d for m in packs.values() for d in m}
        report.kept = len(everything) - len(report.removed)
        report.runs_removed = len(dead_runs)
        if not dry and (report.removed or dead_runs):
            _delete(transfer, [*dead_runs, *dead_loose], dead_packs)
    return report


def _remote_keep(session: Session, transfer: Transfer, locks: list[Lock]) -> set[str]:
    """What the locks and the shared run records need, trees expanded (fetched if need be)."""
    infos = [o.info for lock in locks for e in lock.stages.values() for o in e.outs]
    infos += [i for lock in locks for i in lock.data.values()]
    docs = remote_documents(session, transfer)
    infos += [HashInfo(d, 0, 1) for doc in docs for d in doc.objects()]
    transfer.download([HashInfo(d, 0, 1) for doc in docs for d in doc.objects()])
    infos += [o for doc in docs for o in lock_outputs(session, doc)]
    infos += [HashInfo(d, 0, 0, isdir=True) for d in remote_registered(session, transfer)]
    trees = [i.hash for i in infos if i.isdir and not session.store.has(i.hash)]
    transfer.download([HashInfo(t, 0, 1) for t in trees])  # listings only: small
    keep: set[str] = set()
    for info in infos:
        keep.add(info.hash)
        if info.isdir and session.store.has(info.hash):
            keep.update(e.hash for e in session.store.read_tree(info.hash))
    return keep


def _dead_entries(transfer: Transfer, keep: set[str]) -> list[str]:
    """Run-cache entries on the remote whose outputs would be gone (their logs join `keep`)."""
    remote = transfer.remote
    paths = [p for p in remote.find("runs") if p.endswith(".json")]
    raw = transfer.parallel(
        {p: functools.partial(remote.read_bytes, _full(remote, p)) for p in paths}
    )
    dead = []
    for path, data in raw.items():
        entry = parse_entry(data)
        if entry is not None and all(o.info.hash in keep for o in entry.outs):
            if entry.log:
                keep.add(entry.log)
            continue
        dead.append(path)
    return dead


def _remote_objects(transfer: Transfer) -> tuple[dict[str, int], dict[str, dict[str, Location]]]:
    """(loose object path → its size, pack → its members) on the remote."""
    remote = transfer.remote
    loose = remote.find_sizes("files")
    packs = {pack: read_index(remote, pack) for pack in list_packs(remote)}
    return loose, packs


def _delete(transfer: Transfer, paths: list[str], packs: dict[str, dict[str, Location]]) -> None:
    """Indexes before packs (a pack without one is invisible); then a new generation."""
    remote = transfer.remote
    transfer.remote.delete([_full(remote, p) for p in paths])
    remote.delete([remote.pack_path(p, "idx") for p in packs])
    remote.delete([remote.pack_path(p, "pack") for p in packs])
    transfer.known.adopt(remote.key, remote.renew_generation())


def _full(remote: Remote, relative: str) -> str:
    return f"{remote.base}/{relative}"
