"""What the executor does with the cache: store a stage's outputs after it ran, remember the run,
bring a remembered run's outputs back instead of running the stage again, and store again what
the cache lost while the workspace kept it (`restock`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.config import Config
from pipeline.core.hashing import Hasher, HashInfo, file_digest
from pipeline.core.lockfile import LockedPath, LockEntry
from pipeline.core.stage import Stage
from pipeline.errors import DataError, StageFailed
from pipeline.plan.decisions import Decision, Plan
from pipeline.plan.lost import reread
from pipeline.plan.session import Session
from pipeline.store.links import unshare
from pipeline.store.objects import ObjectStore, store_output, store_strategies
from pipeline.store.restore import Restorer, clear
from pipeline.store.runcache import RunCache, RunEntry


@dataclass
class StageCache:
    """The object store, run-cache and link settings one run works with."""

    store: ObjectStore
    run_cache: RunCache
    hasher: Hasher
    config: Config

    def restorer(self, strategies: list[str] | None = None) -> Restorer:
        chosen = strategies or self.config.cache_type
        return Restorer(self.hasher.root, self.store, self.hasher, chosen)

    def commit(self, stage: Stage, entry: LockEntry, log: Path | None) -> None:
        """Store a successful run's outputs and log, and remember the run by fingerprint."""
        strategies = store_strategies(self.config.cache_type)
        for out in entry.outs:
            # outputs not cached in git's place (cache: false) are still stored, by copy, so
            # that restoring the run brings them back too
            flags = next((o for o in stage.outs if o.path == out.path), None)
            chosen = strategies if flags is None or flags.cache else ["copy"]
            store_output(self.store, self.hasher, out.path, out.info, chosen)
        log_hash = self._store_log(log)
        self.run_cache.put(RunEntry(entry.fingerprint, entry.deps, entry.outs, log_hash))

    def restore(self, stage: Stage, decision: Decision) -> LockEntry:
        """Bring back the outputs of the run `decision.cached` and return its lock entry.

        Every object must still be there before any output is replaced: one that went missing
        since planning raises `DataError` (the stage then runs), never a half-restored stage.
        Each object is verified as it is placed (see `Restorer`).
        """
        cached = decision.cached
        assert cached is not None
        if not all(self.store.complete(o.info) for o in cached.outs):
            raise DataError(f"stage {stage.name}: the cached run lost an output object")
        restorer = self.restorer()
        plain = self.restorer(["copy"])  # `cache: false` outputs belong to git: plain files
        in_git = {o.path for o in stage.outs if not o.cache}
        for out in cached.outs:
            (plain if out.path in in_git else restorer).restore(out.path, out.info)
        return LockEntry(
            cmd=stage.cmd,
            fingerprint=cached.fingerprint,
            params=stage.params,
            deps=_locked(decision.deps),
            outs=cached.outs,
            env=decision.env_digest,
        )

    def _store_log(self, log: Path | None) -> str | None:
        if log is None or not log.is_file():
            return None
        digest = file_digest(log)
        # logs are unlinked before every run, so they may share the object's storage
        self.store.put_file(str(log), digest, store_strategies(self.config.cache_type))
        return digest


def restock(session: Session, plan: Plan) -> bool:
    """Store again the intact workspace paths whose cached object is gone (`plan.unstored`).

    The workspace copy is about to become the only one, so it is rehashed first rather than
    trusted from the stat memo. False means one turned out not to match the lock: the memo now
    holds its real hash, and the caller should plan again (its stage then runs).
    """
    strategies = store_strategies(session.config.cache_type)
    in_git = {o.path for s in session.project.stages.values() for o in s.outs if not o.cache}
    intact = True
    for locked in plan.unstored:
        if not _rehashed_intact(session.hasher, locked):
            intact = False
            continue
        chosen = ["copy"] if locked.path in in_git else strategies
        store_output(session.store, session.hasher, locked.path, locked.info, chosen)
    return intact


def _rehashed_intact(hasher: Hasher, locked: LockedPath) -> bool:
    """Read every file of `locked` again; a mismatch corrects the stat memo."""
    if locked.info.isdir:
        expected = {f"{locked.path}/{e.path}": e.hash for e in hasher.tree(locked.path)}
    else:
        expected = {locked.path: locked.info.hash}
    intact = reread(hasher, list(expected)) == expected
    if not intact:
        hasher.forget(locked.path)
    return intact


def clear_outs(stage: Stage, hasher: Hasher, root: Path) -> None:
    """Make way for a run of `stage`: its outs deleted (`persist` ones kept, unshared from
    the cache), their parents made. Every out is checked against the project's bounds before
    any is touched."""
    for out in stage.outs:
        hasher.bounds.path(out.path, follow=False)
    unshare_persistent(stage, root)
    for out in stage.outs:
        hasher.forget(out.path)
        try:
            clear(hasher.bounds, out.path, keep=out.persist)
        except DataError as exc:
            msg = f"stage {stage.name}: {exc.message}"
            raise StageFailed(stage.name, msg, exc.hint) from None


def hash_outs(stage: Stage, hasher: Hasher) -> dict[str, HashInfo]:
    """The hash of every out `stage` just wrote; one it never wrote fails the stage."""
    hashes: dict[str, HashInfo] = {}
    for out in stage.outs:
        hasher.forget(out.path)
        info = hasher.hash(out.path)
        if info is None:
            raise StageFailed(
                stage.name,
                f"stage {stage.name} did not create {out.path}",
                "the command succeeded but never wrote this declared output",
            )
        hashes[out.path] = info
    return hashes


def unshare_persistent(stage: Stage, root: Path) -> None:
    """Give `persist` outputs private copies, so appending to them never writes into the cache."""
    for out in stage.outs:
        if not out.persist:
            continue
        path = root / out.path
        if path.is_dir():
            for dirpath, _, names in os.walk(path):
                for name in names:
                    unshare(os.path.join(dirpath, name))
        else:
            unshare(str(path))


def _locked(deps: Mapping[str, HashInfo | None]) -> tuple[LockedPath, ...]:
    return tuple(LockedPath(p, i) for p, i in deps.items() if i is not None)
