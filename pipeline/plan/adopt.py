"""Taking a DVC repository over: stages DVC already ran are adopted, not run again.

A stage with no `pipeline.lock` entry is adopted when `dvc.lock` has it with the same command,
params, deps and outs, and every dep and out still has the md5 DVC recorded. Its entry is then
made as a run would make it (xxh3 hashes through the stat memo, the current fingerprint), so
planning goes on as if the stage had run here. `status` only reports adoption; `repro` writes
the entries into `pipeline.lock` (`record_adopted`), so the md5s are read once per stage.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.core.fingerprint import canonical_json, fingerprint
from pipeline.core.hashing import Hasher, HashInfo
from pipeline.core.lockfile import Lock, LockedPath, LockEntry, LockWriter
from pipeline.core.stage import Stage
from pipeline.env.resolve import ResolvedEnv
from pipeline.errors import PipelineError
from pipeline.load.dvclock import DvcPath, DvcStage, read_dvc_lock, under
from pipeline.load.dvcmd5 import path_md5
from pipeline.load.params import flatten_all
from pipeline.load.project import Project
from pipeline.plan.session import Session


class Adoption:
    """The stages of each `dvc.lock` (beside its `dvc.yaml`), read on first need: most plans
    never need one."""

    def __init__(self, project: Project, hasher: Hasher) -> None:
        self.project = project
        self.hasher = hasher
        self._locks: dict[str, dict[str, DvcStage]] = {}  # folder → its dvc.lock's stages
        self.adopted: dict[str, LockEntry] = {}  # the stages adopted so far, by name

    def lock_entry(
        self, stage: Stage, lock: Lock, *, forced: bool, env: ResolvedEnv | None
    ) -> LockEntry | None:
        """`stage`'s entry in `lock`; for a stage never run here, the one adopted from DVC's."""
        locked = lock.stages.get(stage.name)
        if locked is not None or forced:
            return locked
        adopted = self.entry(stage, env.digest if env else None)
        if adopted is not None:
            self.adopted[stage.name] = adopted
        return adopted

    def entry(self, stage: Stage, env: str | None) -> LockEntry | None:
        """The lock entry `stage` would have had if it ran here; None unless adoptable."""
        if stage.frozen or stage.missing_params:
            return None  # never adopted: no md5 of its data is worth reading
        recorded = self._recorded(stage.name)
        if recorded is None or not _same_definition(stage, recorded):
            return None
        try:
            if not all(self._unchanged(stage.wdir, p) for p in (*recorded.deps, *recorded.outs)):
                return None
        except (OSError, PipelineError):  # unreadable or outside the project: not adoptable
            return None
        return _entry(stage, self.hasher, env)

    def _recorded(self, name: str) -> DvcStage | None:
        """`name`'s stage in the `dvc.lock` beside its `dvc.yaml` (named there without the
        `path/dvc.yaml:` prefix a manifest below the root gives it here)."""
        origin = self.project.origins.get(name, "dvc.yaml")
        if posixpath.basename(origin) != "dvc.yaml":
            return None  # an MLproject's stage: DVC never ran it
        folder = posixpath.dirname(origin)
        if folder not in self._locks:
            self._locks[folder] = read_dvc_lock(self.project.root, folder, self.hasher.memo)
        return self._locks[folder].get(name.removeprefix(f"{origin}:"))

    def _unchanged(self, wdir: str, recorded: DvcPath) -> bool:
        path = under(wdir, recorded.path)
        if path is None:
            return False
        full = Path(self.hasher.bounds.path(path))
        return path_md5(full, legacy=recorded.legacy) == recorded.md5


def _same_definition(stage: Stage, recorded: DvcStage) -> bool:
    """Same command, params and paths: DVC would call the stage unchanged."""
    if stage.cmd != recorded.cmd:
        return False
    deps = {under(stage.wdir, d.path) for d in recorded.deps}
    outs = {under(stage.wdir, o.path) for o in recorded.outs}
    if deps != set(stage.deps) or outs != set(stage.out_paths):
        return False
    return _params(stage.wdir, recorded.params) == _params(".", stage.params)


def _params(wdir: str, params: Mapping[str, Mapping[str, Any]]) -> dict[str | None, bytes]:
    """By file, the leaves (`train.lr`): dvc.lock nests a section (`params: [train]`)."""
    return {under(wdir, f): canonical_json(flatten_all(dict(v))) for f, v in params.items() if v}


def _entry(stage: Stage, hasher: Hasher, env: str | None) -> LockEntry | None:
    deps = {d: hasher.hash(d) for d in stage.deps}
    outs = {o: hasher.hash(o) for o in stage.out_paths}
    if any(i is None for i in (*deps.values(), *outs.values())):
        return None
    return LockEntry(
        cmd=stage.cmd,
        fingerprint=fingerprint(stage, deps, env),
        params=stage.params,
        deps=_locked(deps),
        outs=_locked(outs),
        env=env,
    )


def _locked(hashes: Mapping[str, HashInfo | None]) -> tuple[LockedPath, ...]:
    return tuple(LockedPath(p, i) for p, i in hashes.items() if i is not None)


def record_adopted(session: Session, adopted: Mapping[str, LockEntry]) -> Session:
    """Write adopted entries into `pipeline.lock`; the session then carries that lock."""
    if not adopted:
        return session
    lock = session.lock
    for name, entry in adopted.items():
        lock = lock.with_stage(name, entry)
    LockWriter(session.project.root).write(lock)
    return replace(session, lock=lock)
