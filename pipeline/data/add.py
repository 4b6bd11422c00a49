"""`pipeline add`: raw data no stage produces, hashed into the cache and recorded in the lock.

The lock's `data:` section holds each tracked path's hash, so `status` reports it modified or
missing, `checkout` restores it, and `gc` keeps it. Tracked paths go into .gitignore.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.hashing import HashInfo
from pipeline.core.lockfile import Lock, LockWriter
from pipeline.core.paths import PathRuleError, is_within, normalize
from pipeline.data.gitignore import update_gitignore
from pipeline.errors import DataError, UsageError
from pipeline.load.project import Project
from pipeline.plan.session import Session
from pipeline.store.objects import store_output, store_strategies


@dataclass(frozen=True)
class Added:
    """One path `add` tracked, and whether its content changed since it was last added."""

    path: str
    info: HashInfo
    changed: bool


def add_paths(session: Session, paths: list[str]) -> list[Added]:
    """Hash, store and record `paths` (relative to the working directory, or absolute)."""
    project, hasher, lock = session.project, session.hasher, session.lock
    added: list[Added] = []
    for raw in paths:
        relpath = _project_path(project, raw, lock.data)
        info = hasher.hash(relpath)
        if info is None:
            raise DataError(f"{relpath} does not exist", "add files or directories that exist")
        strategies = store_strategies(session.config.cache_type)
        store_output(session.store, hasher, relpath, info, strategies)
        previous = lock.data.get(relpath)
        lock = lock.with_data(relpath, info)
        added.append(Added(relpath, info, previous is None or previous.hash != info.hash))
    LockWriter(project.root).write(lock)
    update_gitignore(project.root, tracked_paths(project, lock))
    return added


def tracked_paths(project: Project, lock: Lock) -> list[str]:
    """What the cache holds for this workspace and git should not: cached outs and data."""
    outs = [o.path for s in project.stages.values() for o in s.outs if o.cache]
    return [*outs, *lock.data]


_OWN_FILES = (".pipeline", ".git", ".gitignore", "pipeline.lock", "params.yaml")


def _project_path(project: Project, raw: str, tracked: Iterable[str]) -> str:
    absolute = (Path.cwd() / raw).resolve() if not Path(raw).is_absolute() else Path(raw)
    try:
        relpath = normalize(str(absolute.relative_to(project.root)))
    except (ValueError, PathRuleError):
        raise UsageError(f"{raw} is outside the project at {project.root}") from None
    if relpath.split("/")[0] in (*_OWN_FILES, project.manifest.name):
        raise UsageError(
            f"{relpath} belongs to the project itself, not to its data",
            "commit it to git; `pipeline add` is for data files",
        )
    for other in tracked:
        if other != relpath and (is_within(relpath, other) or is_within(other, relpath)):
            outer, inner = (other, relpath) if is_within(relpath, other) else (relpath, other)
            raise UsageError(
                f"{inner} is inside {outer}, which is tracked too",
                f"track one of them: `pipeline add {outer}` covers both",
            )
    for parent in (relpath, *[p for p in project.outputs.sorted_paths if is_within(relpath, p)]):
        if parent in project.outputs.owner:
            owner = project.outputs.owner[parent][0]
            raise UsageError(
                f"{relpath} is an output of stage {owner!r}; its data is tracked already",
                "`pipeline add` is for raw data no stage produces",
            )
    inside = project.outputs.inside(relpath)
    if inside:
        raise UsageError(
            f"{relpath} contains {inside[0]}, an output of a stage",
            "add the raw files beside it one by one instead",
        )
    return relpath
